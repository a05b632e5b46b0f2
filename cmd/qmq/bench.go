package main

// qmq bench: produce, consume and end-to-end latency workloads against a
// running metaserver + broker, driven by client/loadgen (which bench/cmd/peer
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
	"strconv"
	"syscall"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/loadgen"
)

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmq bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meta := fs.String("meta", defaultMeta, "meta.server.endpoint")
	subjects := fs.Int("subjects", 1, "subjects the messages are spread over (a consumer per subject per --consumers)")
	size := fs.Int("size", 1024, "message body size in bytes")
	producers := fs.Int("producers", 1, "producers (each a client.Producer with its own connections)")
	consumers := fs.Int("consumers", 1, "members of the consumer group (each subscribes to every subject)")
	duration := fs.Duration("duration", 5*time.Second, "length of each workload")
	warmup := fs.Duration("warmup", time.Second, "unmeasured produce run before the produce workload (0 = none)")
	rate := fs.Int("rate", 0, "messages per second over all producers (e2e default 10000; produce default unlimited)")
	count := fs.Int("count", 0, "consume: messages to pre-fill (0 = what --duration of producing gives)")
	mode := fs.String("mode", "all", "produce, consume, e2e, a comma-separated list, or all")
	batch := fs.Int("batch", 0, "producer batch size (default the client's)")
	senders := fs.Int("senders", 0, "producer sender goroutines (default the client's)")
	pullBatch := fs.Int("pull-batch", 0, "consumer pull batch (default the client's)")
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	modes, err := loadgen.Modes(*mode)
	if err != nil {
		fmt.Fprintln(stderr, "qmq bench:", err)
		return 2
	}
	if *subjects < 1 || *size < 0 || *producers < 1 || *consumers < 1 || *duration <= 0 || *rate < 0 || *count < 0 {
		fmt.Fprintln(stderr, "qmq bench: --subjects, --producers, --consumers and --duration must be positive")
		return 2
	}
	cfg := loadgen.Config{Subjects: *subjects, Size: *size, Producers: *producers, Consumers: *consumers, Duration: *duration, Rate: *rate, Count: *count, Warmup: *warmup}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runID := strconv.FormatInt(time.Now().UnixMilli(), 36)
	b := loadgen.NewQMQ(*meta, runID, *subjects, *size, quietLogger(stderr))
	if *batch > 0 {
		b.ProducerOptions = append(b.ProducerOptions, client.WithBatchSize(*batch))
	}
	if *senders > 0 {
		b.ProducerOptions = append(b.ProducerOptions, client.WithSenders(*senders))
	}
	if *pullBatch > 0 {
		b.ConsumerOptions = append(b.ConsumerOptions, client.WithPullBatch(*pullBatch))
	}
	var results []loadgen.Result
	err = loadgen.RunModes(ctx, b, "qmq", cfg, modes, func(r loadgen.Result) {
		results = append(results, r)
		if !*asJSON {
			fmt.Fprintln(stdout, r.String())
		}
	})
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
	return 0
}
