//go:build perf

// Figures, not checks: `make perf` runs them (-tags perf, TestPerf*).

package tx

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/tests/framework"
)

// TestPerfTransactionalSend measures on MariaDB, in one run, at a modest
// steady rate (one business transaction every 10 ms, 300 of each kind,
// the kinds taking turns):
//   - commit-to-delivery latency of transactional messages: from Commit's
//     return to the consumer's handler (p50/p99);
//   - the cost of a business transaction (BEGIN, an UPDATE, COMMIT) alone,
//     with a transactional send (the INSERT inside it), and with a plain
//     synchronous Producer.Send after its commit (what an application
//     without transactional messages does), so the overhead of the
//     transactional send over the plain one reads directly.
//
// Everything shares one process and the machine's cores: the metaserver,
// the broker, the producer, the consumer and the database.
func TestPerfTransactionalSend(t *testing.T) {
	const n, every = 300, 10 * time.Millisecond
	ctx := context.Background()
	cluster := framework.StartCluster(t, framework.ClusterOptions{Groups: 1})
	p, err := client.NewProducer(ctx, cluster.Endpoint(), client.WithAppCode("tx-perf"), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	}()
	subject := fmt.Sprintf("tx.perf.%d", time.Now().UnixNano())

	// The consumer notes when each message arrives.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	c, err := client.NewConsumer(ctx, cluster.Endpoint(), subject, "txperf",
		client.WithPullTimeout(400*time.Millisecond), client.WithAckFlushInterval(100*time.Millisecond),
		client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(runCtx, func(_ context.Context, m *client.Message) error {
			now := time.Now()
			mu.Lock()
			arrived[m.ID()] = now
			mu.Unlock()
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	time.Sleep(2 * time.Second) // the new group's first pull reaches the broker

	d := mariaDB(t)
	accounts := d.business(t)
	if _, err := d.db.Exec("INSERT INTO " + accounts + " (id, state) VALUES (1, 'open')"); err != nil {
		t.Fatal(err)
	}
	s, err := New(d.db, p, WithTable(d.table), WithLogger(testlog.Logger(t, "tx", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	// Every UPDATE writes a new value: one that changes nothing leaves
	// InnoDB nothing to flush at COMMIT, and that transaction looks cheap.
	update := "UPDATE " + accounts + " SET state = ? WHERE id = 1"
	var version int
	state := func() string { version++; return fmt.Sprint(version) }

	// The three kinds take turns, one operation every `every`, so that
	// they see the same machine (a busy shared VM drifts over seconds);
	// a warm-up round of each comes first.
	bare := func(i int) (*client.Message, error) {
		return nil, s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error {
			_, err := t1.ExecContext(ctx, update, state())
			return err
		})
	}
	// The parts each kind adds, measured on their own: differences of
	// whole transactions drown in the noise of a shared machine.
	var insertTook, sendTook []time.Duration
	withTx := func(i int) (*client.Message, error) {
		m := p.NewMessage(subject).SetProperty("i", fmt.Sprint(i)).AddTag("perf")
		return m, s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error {
			if _, err := t1.ExecContext(ctx, update, state()); err != nil {
				return err
			}
			start := time.Now()
			err := t1.Send(ctx, m)
			if i >= 0 {
				insertTook = append(insertTook, time.Since(start))
			}
			return err
		})
	}
	sentAt := map[string]time.Time{} // plain: from Send's start
	plain := func(i int) (*client.Message, error) {
		m := p.NewMessage(subject).SetProperty("i", fmt.Sprint(i)).AddTag("perf")
		if _, err := bare(i); err != nil {
			return nil, err
		}
		start := time.Now()
		err := p.Send(ctx, m)
		if i >= 0 {
			sentAt[m.ID()] = start
			sendTook = append(sendTook, time.Since(start))
		}
		return m, err
	}
	committedAt := map[string]time.Time{} // transactional: from COMMIT's return
	kinds := []struct {
		name string
		op   func(int) (*client.Message, error)
		took []time.Duration
	}{{name: "business transaction", op: bare}, {name: "transactional send", op: withTx}, {name: "plain send", op: plain}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := -10; i < n; i++ {
		for k := range kinds {
			<-tick.C
			kd := &kinds[k]
			start := time.Now()
			m, err := kd.op(i)
			end := time.Now()
			if err != nil {
				t.Fatalf("%s %d: %v", kd.name, i, err)
			}
			if i < 0 {
				continue // warm-up
			}
			kd.took = append(kd.took, end.Sub(start))
			if k == 1 {
				committedAt[m.ID()] = end
			}
		}
	}
	latencies := func(from map[string]time.Time) []time.Duration {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			var got []time.Duration
			for id, t0 := range from {
				if at, ok := arrived[id]; ok {
					got = append(got, at.Sub(t0))
				}
			}
			mu.Unlock()
			if len(got) == len(from) || time.Now().After(deadline) {
				if len(got) < len(from) {
					t.Errorf("%d of %d messages did not arrive within 30 s", len(from)-len(got), len(from))
				}
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	txLat, plainLat := latencies(committedAt), latencies(sentAt)
	var left int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) { // DELETEs follow the broker's answers
		if err := d.db.QueryRow("SELECT COUNT(*) FROM " + d.table).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
	}

	b, tx, pl := kinds[0].took, kinds[1].took, kinds[2].took
	t.Logf("MariaDB, %d business transactions of each kind, taking turns, one every %v:", n, every)
	t.Logf("  business transaction alone (BEGIN, UPDATE, COMMIT):       %s", stats(b))
	t.Logf("  ... with a transactional send (INSERT inside, async send): %s", stats(tx))
	t.Logf("  ... then a plain synchronous Producer.Send after COMMIT:   %s", stats(pl))
	t.Logf("  what each adds, measured alone: Tx.Send (the INSERT) %s; Producer.Send %s", stats(insertTook), stats(sendTook))
	t.Logf("  commit-to-delivery, transactional: %s", stats(txLat))
	t.Logf("  send-to-delivery, plain:           %s", stats(plainLat))
	t.Logf("  rows left in the table: %d", left)
	if left != 0 {
		t.Errorf("%d rows left after every message was delivered", left)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func stats(d []time.Duration) string {
	return fmt.Sprintf("p50 %v, p99 %v, max %v (n=%d)", pct(d, 50).Round(10*time.Microsecond), pct(d, 99).Round(10*time.Microsecond), pct(d, 100).Round(10*time.Microsecond), len(d))
}
