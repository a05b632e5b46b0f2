package client_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/tests/framework"
)

// BenchmarkE2ELatency is the unloaded end-to-end latency of one message
// (SendAsync, 1 KiB body) through an in-process metaserver and broker to a
// consumer blocked in Pull: one op is one message sent and received, one at
// a time, so ns/op is the whole path (producer queue, send, append,
// long-poll wake-up, pull response, hand-over to Pull) with no queueing.
// Issue 19 tracks the median of this path against NATS JetStream's.
func BenchmarkE2ELatency(b *testing.B) {
	c := framework.StartCluster(b, framework.ClusterOptions{})
	ctx := context.Background()
	p, err := client.NewProducer(ctx, c.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	subject := fmt.Sprintf("bench.latency.%d", time.Now().UnixNano())
	cons, err := client.NewConsumer(ctx, c.Endpoint(), subject, "g", client.WithPullTimeout(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	// Warm up: the route and the group's cursor exist before timing (a new
	// group starts at the latest message: send until one arrives).
	for {
		if err := p.Send(ctx, p.NewMessage(subject).SetBody("warm")); err != nil {
			b.Fatal(err)
		}
		msgs, err := cons.Pull(ctx, 100)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			m.Ack(nil)
		}
		if len(msgs) > 0 {
			break
		}
	}
	body := strings.Repeat("x", 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.SendAsync(p.NewMessage(subject).SetBody(body), nil); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 1; {
			msgs, err := cons.Pull(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range msgs {
				m.Ack(nil)
			}
			got += len(msgs)
		}
	}
}
