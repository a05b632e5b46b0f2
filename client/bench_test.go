package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/protocol"
)

// pullBody is a PULL_MESSAGE response of n messages with a body of size
// bytes each, as a producer of this package sends them.
func pullBody(b testing.TB, n, size int) []byte {
	ids := newIDGen()
	var payloads [][]byte
	for i := 0; i < n; i++ {
		now := time.Now()
		m := newMessage("bench.subject", ids.next(now), now)
		m.props[PropExpireTime] = "1700000000000"
		m.props[PropAppCode] = "bench-app"
		m.SetBody(strings.Repeat("x", size))
		pm, err := m.toWire(now)
		if err != nil {
			b.Fatal(err)
		}
		wire, err := protocol.AppendMessage(nil, pm)
		if err != nil {
			b.Fatal(err)
		}
		payloads = append(payloads, wire[8:]) // the payload follows the CRC
	}
	return protocol.AppendPullResponse(nil, 0, payloads, protocol.CurrentVersion)
}

// BenchmarkPullDeliver is a consumer's work for one pull response of 50 ×
// 1 KiB messages: decode, build the messages, register them for acking,
// hand them over through the channel, take them out and acknowledge them.
func BenchmarkPullDeliver(b *testing.B) {
	body := pullBody(b, 50, 1024)
	cm, _ := newConsumerMetrics(nil, "bench.subject", "grp")
	c := &Consumer{cfg: consumerConfig{pullBatch: 50}, log: hclog.NewNullLogger(), subject: "bench.subject", group: "grp", m: cm, msgs: make(chan *Message, 64)}
	q := newAckQueue(c, queueKey{subject: "bench.subject", brokerGroup: "g1"})
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pr, err := protocol.DecodePullResponseShared(body, protocol.CurrentVersion)
		if err != nil {
			b.Fatal(err)
		}
		// Each response continues the pull log.
		for j := range pr.Messages {
			pr.Messages[j].PullOffset = int64(i*len(pr.Messages) + j)
		}
		if !c.deliver(ctx, q, pr.Messages, time.Now()) {
			b.Fatal("deliver stopped")
		}
		for range pr.Messages {
			m := <-c.msgs
			if m.Body() == "" {
				b.Fatal("no body")
			}
			m.Ack(nil)
		}
		q.mu.Lock()
		q.ranges = q.ranges[:0]
		q.mu.Unlock()
		select {
		case <-q.kick:
		default:
		}
	}
}
