package main

// qmq bench: produce, consume and end-to-end latency workloads against a
// running metaserver + broker, driven by internal/loadgen (which bench/cmd/peer
// also uses to run the same workloads against NATS JetStream side by side).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/qmq-go/qmq/internal/loadgen"
)

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmq bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", defaultMeta, "meta.server.endpoint")
	workload := loadgen.RegisterFlags(fs)
	rate := fs.Int("rate", 0, "messages per second over all producers (e2e default 10000; produce default unlimited)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	htmlOut := fs.String("html", "", "also write a self-contained HTML report (throughput over time, latency by percentile) to this file")
	quiet := fs.Bool("quiet", false, "no live progress line each second (on stderr)")
	delay := fs.Duration("delay", 0, "measure delay servers: the produce workload runs real-time, then with every message sent with this delay (e.g. 10m: due after the run), and the ratio of the two is printed (issue 15's target: at least 0.8); implies --mode produce")
	fs.Usage = func() {
		fmt.Fprint(stderr, benchHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qmq bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg, modes, err := workload.Config()
	if err == nil && *rate < 0 {
		err = errors.New("--rate must not be negative")
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmq bench:", err)
		return 2
	}
	if err == nil && *delay < 0 {
		err = errors.New("--delay must not be negative")
	}
	if err == nil && *delay > 0 && !slices.Equal(modes, []string{"produce"}) && !slices.Equal(modes, []string{"produce", "consume", "e2e"}) {
		err = fmt.Errorf("--delay measures the produce workload only; drop --mode or use --mode produce")
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmq bench:", err)
		return 2
	}
	cfg.Rate = *rate
	if !*quiet {
		cfg.Progress = func(s loadgen.Sample) { fmt.Fprintln(stderr, s.String()) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runID := strconv.FormatInt(time.Now().UnixMilli(), 36)
	if *delay > 0 {
		newQMQ := func(id string) *loadgen.QMQ {
			return loadgen.NewQMQ(*meta, id, cfg.Subjects, cfg.Size, quietLogger(stderr))
		}
		rt, dl, ratio, err := runDelayBench(ctx, *meta, runID, cfg, *delay, workload.TuneQMQ, newQMQ)
		if err != nil {
			fmt.Fprintln(stderr, "qmq bench:", err)
			return 1
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(map[string]any{"results": []loadgen.Result{rt, dl}, "delay_ratio": ratio, "delay_target": delayBenchTarget})
		} else {
			fmt.Fprintln(stdout, rt.String())
			fmt.Fprintln(stdout, dl.String())
			fmt.Fprintln(stdout, delayRatioLine(ratio, *delay))
		}
		return 0
	}
	b := loadgen.NewQMQ(*meta, runID, cfg.Subjects, cfg.Size, quietLogger(stderr))
	workload.TuneQMQ(b)
	var results []loadgen.Result
	started := time.Now()
	err = loadgen.RunModes(ctx, b, "qmq", cfg, modes, func(r loadgen.Result) {
		results = append(results, r)
		if !*asJSON {
			fmt.Fprintln(stdout, r.String())
		}
	})
	if !*asJSON && len(results) > 0 {
		printBenchTable(stdout, results)
	}
	if *htmlOut != "" && len(results) > 0 {
		if werr := writeBenchReport(*htmlOut, "qmq bench", args, started, results); werr != nil {
			fmt.Fprintln(stderr, "qmq bench:", werr)
			return 1
		}
		fmt.Fprintf(stderr, "report written to %s\n", *htmlOut)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if len(results) == 1 && err == nil {
			_ = enc.Encode(results[0])
		} else {
			out := map[string]any{"results": results}
			if err != nil {
				out["error"] = err.Error()
			}
			_ = enc.Encode(out)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmq bench:", err)
		return 1
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "subjects %s%s.s0..s%d are left on the brokers; retention deletes their messages (see qmq bench --help)\n",
			loadgen.QMQSubjectPrefix, runID, cfg.Subjects-1)
	}
	return 0
}

// benchHelp says what a run leaves behind: nothing the protocol can delete
// (QMQ has no action that removes a subject), so it is named to be found.
var benchHelp = `Usage: qmq bench --meta URL [flags]

Runs produce, consume (per-message ack) and end-to-end latency workloads.

What a run leaves behind: its subjects are ` + loadgen.QMQSubjectPrefix + `<run>.s<N> and its consumer
group bench_<run>, <run> being a new base-36 timestamp each run. QMQ has no action
that deletes a subject, so they stay: the brokers' retention deletes the expired
segments holding their messages (messagelog.retention.hours and
consumerlog.retention.hours, 72 by default), and their routes stay listed in the
metaserver (qmq tools ListSubjectRoutes). Against qmq dev, the simplest clean-up
is to stop it and delete its --data directory; point benches at a test cluster.

Flags:
`
