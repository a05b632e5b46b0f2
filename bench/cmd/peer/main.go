// Command peer runs qmq bench's workloads (produce, consume with per-message
// ack, end-to-end latency at a fixed rate) against qmq and its peers — NATS
// JetStream, RabbitMQ with a quorum queue and RabbitMQ with a stream — in one
// run and prints them side by side with qmq/peer ratios.
//
//	cd bench && go run ./cmd/peer --meta http://127.0.0.1:8080/meta/address \
//	    --systems qmq,nats,rabbit-quorum,rabbit-stream
//
// Both systems run through github.com/qmq-go/qmq/internal/loadgen, the same
// harness as `qmq bench` (this module replaces the main module with ../).
// This module is separate so that nats.go and amqp091-go are not
// dependencies of the product.
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

	"github.com/qmq-go/qmq/internal/benchreport"
	"github.com/qmq-go/qmq/internal/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", "http://127.0.0.1:8080/meta/address", "qmq meta.server.endpoint")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL (JetStream enabled)")
	systems := fs.String("systems", "nats,qmq", "systems to run, in order: qmq, nats, rabbit-quorum, rabbit-stream")
	rabbitURL := fs.String("rabbit", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ AMQP URL")
	rabbitWindow := fs.Int("rabbit-window", 4000, "RabbitMQ: publishes awaiting their confirm per publisher (as --nats-max-pending)")
	rabbitPrefetch := fs.Int("rabbit-prefetch", 1000, "RabbitMQ: unacknowledged deliveries per consumer (basic.qos)")
	workload := loadgen.RegisterFlags(fs)
	rate := fs.Int("rate", 10000, "e2e: messages per second")
	natsPending := fs.Int("nats-max-pending", 4000, "NATS PublishAsyncMaxPending (nats.go default 4000)")
	natsReplicas := fs.Int("nats-replicas", 1, "replicas of the NATS stream (more than 1 needs a JetStream cluster; the stream is led by the server --nats names)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	htmlOut := fs.String("html", "", "also write a self-contained HTML report of the run (every system side by side) to this file")
	quiet := fs.Bool("quiet", false, "no live progress line each second (on stderr)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the clients) to this file")
	traceOut := fs.String("trace", "", "write a runtime execution trace of this process (the clients; go tool trace) to this file")
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
	stopTrace, err := loadgen.StartTrace(*traceOut)
	if err != nil {
		fmt.Fprintln(stderr, "peer: --trace:", err)
		return 2
	}
	defer stopTrace()
	cfg, modes, err := workload.Config()
	if err == nil && *rate <= 0 {
		err = errors.New("--rate must be positive")
	}
	if err != nil {
		fmt.Fprintln(stderr, "peer:", err)
		return 2
	}
	if !*quiet {
		cfg.Progress = func(s loadgen.Sample) { fmt.Fprintln(stderr, s.String()) }
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
		case "rabbit-quorum", "rabbit-stream":
			b, err := newRabbitBench(*rabbitURL, strings.TrimPrefix(s, "rabbit-"), runID, cfg.Subjects, cfg.Size,
				*rabbitWindow, *rabbitPrefetch, cfg.Consumers)
			if err != nil {
				fmt.Fprintf(stderr, "peer: %s: %v\n", s, err)
				return 1
			}
			defer b.Close()
			backends[s] = b
		default:
			fmt.Fprintf(stderr, "peer: unknown system %q (want qmq, nats, rabbit-quorum, rabbit-stream)\n", s)
			return 2
		}
	}
	var order []string
	for _, s := range strings.Split(*systems, ",") {
		order = append(order, strings.TrimSpace(s))
	}
	results := map[string]map[string]loadgen.Result{}
	var inOrder []loadgen.Result
	started := time.Now()
	for _, m := range modes {
		c := cfg
		if m == "e2e" {
			c.Rate = *rate
		}
		for _, s := range order {
			err := loadgen.RunModes(ctx, backends[s], s, c, []string{m}, func(r loadgen.Result) {
				if results[s] == nil {
					results[s] = map[string]loadgen.Result{}
				}
				results[s][m] = r
				inOrder = append(inOrder, r)
				fmt.Fprintln(stderr, r.String())
			})
			if err != nil {
				fmt.Fprintln(stderr, "peer:", err)
				return 1
			}
		}
	}
	if *htmlOut != "" {
		if err := writeReport(*htmlOut, args, started, inOrder); err != nil {
			fmt.Fprintln(stderr, "peer:", err)
			return 1
		}
		fmt.Fprintf(stderr, "report written to %s\n", *htmlOut)
	}
	if *asJSON {
		out := map[string]any{"config": map[string]any{"subjects": cfg.Subjects, "size": cfg.Size, "producers": cfg.Producers,
			"consumers": cfg.Consumers, "groups": cfg.Groups, "count": cfg.Count, "duration_s": cfg.Duration.Seconds(), "e2e_rate": *rate}, "systems": order, "results": results, "ratios": ratios(order, results)}
		_ = json.NewEncoder(stdout).Encode(out)
		return 0
	}
	printTable(stdout, cfg, *rate, modes, order, results)
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
	{"e2e", "e2e p99.9 ms", func(r loadgen.Result) float64 { return r.LatencyP999 }, "%.3f"},
	{"e2e", "e2e max ms", func(r loadgen.Result) float64 { return r.LatencyMax }, "%.3f"},
}

// ratios gives, per peer (every system but qmq) and row, qmq's figure
// divided by the peer's.
func ratios(order []string, results map[string]map[string]loadgen.Result) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	q := results["qmq"]
	for _, peer := range order {
		if peer == "qmq" {
			continue
		}
		n := results[peer]
		for _, r := range rows {
			a, okA := q[r.mode]
			b, okB := n[r.mode]
			if okA && okB && r.get(b) > 0 {
				if out[peer] == nil {
					out[peer] = map[string]float64{}
				}
				out[peer][r.label] = r.get(a) / r.get(b)
			}
		}
	}
	return out
}

func printTable(w io.Writer, cfg loadgen.Config, rate int, modes, order []string, results map[string]map[string]loadgen.Result) {
	fmt.Fprintf(w, "%d B messages, %d subject(s), %d producer(s), %d consumer(s), %d group(s), %s per workload, e2e at %d msg/s\n",
		cfg.Size, cfg.Subjects, cfg.Producers, cfg.Consumers, max(cfg.Groups, 1), cfg.Duration, rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var peers []string
	header := "workload\t"
	for _, s := range order {
		header += s + "\t"
		if s != "qmq" {
			peers = append(peers, s)
		}
	}
	if _, ok := results["qmq"]; ok {
		for _, p := range peers {
			header += "qmq/" + p + "\t"
		}
	} else {
		peers = nil
	}
	fmt.Fprintln(tw, header)
	rt := ratios(order, results)
	want := map[string]bool{}
	for _, m := range modes {
		want[m] = true
	}
	for _, r := range rows {
		if !want[r.mode] {
			continue
		}
		line := r.label + "\t"
		for _, s := range order {
			if res, ok := results[s][r.mode]; ok {
				line += fmt.Sprintf(r.format, r.get(res)) + "\t"
			} else {
				line += "-\t"
			}
		}
		for _, p := range peers {
			if v, ok := rt[p][r.label]; ok {
				line += fmt.Sprintf("%.2fx\t", v)
			} else {
				line += "-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(throughput: higher is better; latency: lower is better; a throughput ratio > 1 or a latency ratio < 1 means qmq is ahead)")
}

// writeReport writes the run as a self-contained HTML report.
func writeReport(path string, args []string, started time.Time, results []loadgen.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	err = benchreport.Write(f, benchreport.Report{Title: "qmq and peers", Command: "peer " + strings.Join(args, " "),
		Started: started, Results: results})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--html %s: %w", path, err)
	}
	return nil
}
