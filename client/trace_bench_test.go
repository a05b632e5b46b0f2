package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/tests/framework"
)

// BenchmarkProduceConsume is the produce/consume throughput of one
// producer (SendAsync, 1 KiB bodies) and one consumer (Run, concurrency 4)
// through an in-process metaserver and broker, with tracing off (no
// TracerProvider, the default) and on (every message sampled: the
// producer's send, the broker's store, the consumer's pull, handle and ack
// spans, batched to an exporter that drops them). One op is one message
// sent and handled.
func BenchmarkProduceConsume(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "tracing=off"
		if on {
			name = "tracing=on"
		}
		b.Run(name, func(b *testing.B) {
			opts := tracingOptions(b, on)
			c := framework.StartCluster(b, framework.ClusterOptions{Configure: tracingBroker(b, on)})
			ctx := context.Background()
			p, err := client.NewProducer(ctx, c.Endpoint(), producerOptions(opts)...)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			subject := fmt.Sprintf("bench.trace.%d", time.Now().UnixNano())
			cons, err := client.NewConsumer(ctx, c.Endpoint(), subject, "g", append(consumerOptions(opts), client.WithConcurrency(4), client.WithPullTimeout(200*time.Millisecond))...)
			if err != nil {
				b.Fatal(err)
			}
			var handled atomic.Int64
			done := make(chan struct{})
			runCtx, stop := context.WithCancel(ctx)
			go func() {
				defer close(done)
				_ = cons.Run(runCtx, func(context.Context, *client.Message) error { handled.Add(1); return nil })
			}()
			defer func() { stop(); <-done }()
			// Warm up: the route and the group's cursor exist before timing
			// (a new group starts at the latest message: send until one arrives).
			for handled.Load() < 1 {
				if err := p.Send(ctx, p.NewMessage(subject).SetBody("warm")); err != nil {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			body := strings.Repeat("x", 1024)
			b.ReportAllocs()
			b.ResetTimer()
			start := handled.Load()
			for i := 0; i < b.N; i++ {
				for {
					err := p.SendAsync(p.NewMessage(subject).SetBody(body), nil)
					if err == nil {
						break
					}
					if err != client.ErrQueueFull {
						b.Fatal(err)
					}
					time.Sleep(time.Millisecond)
				}
			}
			deadline := time.Now().Add(time.Minute)
			for handled.Load()-start < int64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("handled %d of %d", handled.Load()-start, b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
