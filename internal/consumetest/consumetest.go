// Package consumetest gives end-to-end tests a consumer group that records
// what it consumes, to check that every acknowledged send arrives (the
// broker's and the Nomad jobs' failover tests share it). For tests only.
package consumetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
)

// Recorder records the IDs of the messages a consumer group consumed.
type Recorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

// Start subscribes group to subject through the metaserver at endpoint and
// records what it consumes until the test ends. It polls briskly (pull
// timeout 300 ms, routes refreshed every 500 ms) so that a test sees a
// failover's new master soon. A new group starts at the subject's next
// message: start it before sending.
func Start(t testing.TB, endpoint, subject, group string) *Recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := client.NewConsumer(ctx, endpoint, subject, group, client.WithPullTimeout(300*time.Millisecond),
		client.WithRouteRefresh(500*time.Millisecond), client.WithAckFlushInterval(100*time.Millisecond), client.WithPullBatch(200))
	if err != nil {
		cancel()
		t.Fatalf("consumer group %s for %s through %s: %v", group, subject, endpoint, err)
	}
	r := &Recorder{seen: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cons.Run(ctx, func(_ context.Context, m *client.Message) error {
			r.mu.Lock()
			r.seen[m.ID()] = true
			r.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); cons.Close(); <-done })
	return r
}

// Missing returns how many of ids have not been consumed, and up to five of them.
func (r *Recorder) Missing(ids []string) (n int, some []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if !r.seen[id] {
			n++
			if len(some) < 5 {
				some = append(some, id)
			}
		}
	}
	return n, some
}
