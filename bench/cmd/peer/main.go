// Command peer runs qmq bench's workloads (produce, consume with per-message
// ack, end-to-end latency at a fixed rate) against NATS JetStream and qmq in
// one run and prints them side by side with qmq/nats ratios.
//
//	cd bench && go run ./cmd/peer --meta http://127.0.0.1:8080/meta/address
//
// Both systems run through github.com/qmq-go/qmq/internal/loadgen, the same
// harness as `qmq bench` (this module replaces the main module with ../).
// This module is separate so that nats.go is not a dependency of the product.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", "http://127.0.0.1:8080/meta/address", "qmq meta.server.endpoint")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL (JetStream enabled)")
	systems := fs.String("systems", "nats,qmq", "systems to run, in order")
	workload := loadgen.RegisterFlags(fs)
	rate := fs.Int("rate", 10000, "e2e: messages per second")
	natsPending := fs.Int("nats-max-pending", 4000, "NATS PublishAsyncMaxPending (nats.go default 4000)")
	natsReplicas := fs.Int("nats-replicas", 1, "replicas of the NATS stream (more than 1 needs a JetStream cluster; the stream is led by the server --nats names)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the clients) to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	stopProfile, err := loadgen.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(stderr, "peer: --cpuprofile:", err)
		return 2
	}
	defer stopProfile()
	cfg, modes, err := workload.Config()
	if err == nil && *rate <= 0 {
		err = errors.New("--rate must be positive")
	}
	if err != nil {
		fmt.Fprintln(stderr, "peer:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runID := strconv.FormatInt(time.Now().UnixMilli(), 36)
	log := hclog.New(&hclog.LoggerOptions{Name: "client", Level: hclog.Warn, Output: stderr})

	backends := map[string]loadgen.Backend{}
	for _, s := range strings.Split(*systems, ",") {
		switch s = strings.TrimSpace(s); s {
		case "qmq":
			b := loadgen.NewQMQ(*meta, runID, cfg.Subjects, cfg.Size, log)
			workload.TuneQMQ(b)
			backends[s] = b
		case "nats":
			b, err := newNATSBench(ctx, *natsURL, runID, cfg.Subjects, cfg.Size, *natsPending, *natsReplicas)
			if err != nil {
				fmt.Fprintf(stderr, "peer: nats at %s: %v\n", *natsURL, err)
				return 1
			}
			defer b.Close()
			backends[s] = b
		default:
			fmt.Fprintf(stderr, "peer: unknown system %q (want qmq, nats)\n", s)
			return 2
		}
	}
	order := strings.Split(*systems, ",")
	results := map[string]map[string]loadgen.Result{}
	for _, m := range modes {
		c := cfg
		if m == "e2e" {
			c.Rate = *rate
		}
		for _, s := range order {
			s = strings.TrimSpace(s)
			err := loadgen.RunModes(ctx, backends[s], s, c, []string{m}, func(r loadgen.Result) {
				if results[s] == nil {
					results[s] = map[string]loadgen.Result{}
				}
				results[s][m] = r
				fmt.Fprintln(stderr, r.String())
			})
			if err != nil {
				fmt.Fprintln(stderr, "peer:", err)
				return 1
			}
		}
	}
	if *asJSON {
		out := map[string]any{"config": map[string]any{"subjects": cfg.Subjects, "size": cfg.Size, "producers": cfg.Producers,
			"consumers": cfg.Consumers, "duration_s": cfg.Duration.Seconds(), "e2e_rate": *rate}, "results": results, "ratios": ratios(results)}
		_ = json.NewEncoder(stdout).Encode(out)
		return 0
	}
	printTable(stdout, cfg, *rate, modes, results)
	return 0
}

type row struct {
	mode, label string
	get         func(loadgen.Result) float64
	format      string
}

var rows = []row{
	{"produce", "produce msg/s", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"consume", "consume msg/s (ack each)", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"e2e", "e2e delivered msg/s", func(r loadgen.Result) float64 { return r.MsgPerSec }, "%.0f"},
	{"e2e", "e2e p50 ms", func(r loadgen.Result) float64 { return r.LatencyP50 }, "%.3f"},
	{"e2e", "e2e p90 ms", func(r loadgen.Result) float64 { return r.LatencyP90 }, "%.3f"},
	{"e2e", "e2e p99 ms", func(r loadgen.Result) float64 { return r.LatencyP99 }, "%.3f"},
	{"e2e", "e2e max ms", func(r loadgen.Result) float64 { return r.LatencyMax }, "%.3f"},
}

func ratios(results map[string]map[string]loadgen.Result) map[string]float64 {
	out := map[string]float64{}
	q, n := results["qmq"], results["nats"]
	for _, r := range rows {
		a, okA := q[r.mode]
		b, okB := n[r.mode]
		if okA && okB && r.get(b) > 0 {
			out[r.label] = r.get(a) / r.get(b)
		}
	}
	return out
}

func printTable(w io.Writer, cfg loadgen.Config, rate int, modes []string, results map[string]map[string]loadgen.Result) {
	fmt.Fprintf(w, "%d B messages, %d subject(s), %d producer(s), %d consumer(s), %s per workload, e2e at %d msg/s\n",
		cfg.Size, cfg.Subjects, cfg.Producers, cfg.Consumers, cfg.Duration, rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tqmq\tnats\tqmq/nats\t")
	rt := ratios(results)
	want := map[string]bool{}
	for _, m := range modes {
		want[m] = true
	}
	cell := func(sys string, r row) string {
		res, ok := results[sys][r.mode]
		if !ok {
			return "-"
		}
		return fmt.Sprintf(r.format, r.get(res))
	}
	for _, r := range rows {
		if !want[r.mode] {
			continue
		}
		ratio := "-"
		if v, ok := rt[r.label]; ok {
			ratio = fmt.Sprintf("%.2fx", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.label, cell("qmq", r), cell("nats", r), ratio)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(throughput: higher is better; latency: lower is better, ratio < 1 means qmq is faster)")
}
