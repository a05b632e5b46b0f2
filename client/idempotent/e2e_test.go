package idempotent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/tests/framework"
)

// End to end: a real metaserver and two brokers in-process
// (tests/framework), a producer that sends half of the messages twice (the
// broker stores both copies: real duplicate deliveries), and two consumer groups whose handlers run
// through Wrap with the transactional checker on MariaDB, sharing one dedup
// table. Handlers fail or panic after their write on the first attempt of
// some messages; the consumer retries those through %RETRY% with the same
// message id. Every group must apply every message's effect exactly once.

// quietLogger logs warnings into the test output until the test ends, then
// drops (logging into a finished test panics, and the broker's goroutines
// may outlive it by a moment).
func quietLogger(t *testing.T, name string) hclog.Logger {
	return testlog.Logger(t, name, hclog.Warn)
}

func TestEndToEndConsumerTransactionalExactlyOnce(t *testing.T) {
	db := openMariaDB(t)
	db.SetMaxOpenConns(32)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, grp VARCHAR(32) NOT NULL, msg_id VARCHAR(100) NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	checker, err := NewSQL(db, SQLConfig{Dialect: MySQL, Transactional: true, Logger: quietLogger(t, "checker")})
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}

	// Two groups (min.group.num=2); a retry is redelivered after a second.
	cluster := framework.StartCluster(t, framework.ClusterOptions{Groups: 2,
		Configure: func(_ string, _ int, s *broker.Settings) { s.RetryDelay = time.Second }})

	p, err := client.NewProducer(ctx, cluster.Endpoint(), client.WithRouteRefresh(time.Second), client.WithSendTimeout(3*time.Second),
		client.WithLogger(quietLogger(t, "producer")), client.WithAppCode("idem-e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})

	subject := fmt.Sprintf("idem.e2e.%d", time.Now().UnixNano())
	const n = 20
	ids := make([]string, n)
	failFirst := map[string]string{} // message id -> "error" or "panic", for the first attempt
	msgs := make([]*client.Message, n)
	for i := range msgs {
		msgs[i] = p.NewMessage(subject).SetBody(fmt.Sprintf("payload %d", i))
		ids[i] = msgs[i].ID()
		switch {
		case i%4 == 0:
			failFirst[ids[i]] = "error"
		case i%5 == 0:
			failFirst[ids[i]] = "panic"
		}
	}

	type groupStats struct {
		deliveries atomic.Int64 // calls of the wrapped handler
		calls      atomic.Int64 // calls of the inner handler
		mu         sync.Mutex
		failed     map[string]bool
		succeeded  map[string]int // message id -> Times() of the successful attempt
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var runWG sync.WaitGroup
	groups := []string{"ga", "gb"}
	stats := map[string]*groupStats{}
	for _, g := range groups {
		st := &groupStats{failed: map[string]bool{}, succeeded: map[string]int{}}
		stats[g] = st
		c, err := client.NewConsumer(ctx, cluster.Endpoint(), subject, g,
			client.WithConcurrency(4), client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond),
			client.WithAckFlushInterval(100*time.Millisecond), client.WithRouteRefresh(time.Second), client.WithCloseWait(3*time.Second),
			client.WithLogger(quietLogger(t, "consumer-"+g)))
		if err != nil {
			t.Fatal(err)
		}
		inner := func(ctx context.Context, m *client.Message) error {
			st.calls.Add(1)
			tx := Tx(ctx)
			if tx == nil {
				return errors.New("no transaction in the handler's context")
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO effects (grp, msg_id) VALUES (?, ?)", g, m.ID()); err != nil {
				return err
			}
			st.mu.Lock()
			mode := failFirst[m.ID()]
			first := mode != "" && !st.failed[m.ID()]
			st.failed[m.ID()] = true
			if !first {
				st.succeeded[m.ID()] = m.Times()
			}
			st.mu.Unlock()
			if first && mode == "panic" {
				panic("first attempt panics after its write")
			}
			if first {
				return errors.New("first attempt fails after its write")
			}
			return nil
		}
		wrapped := Wrap(checker, inner, WithLogger(quietLogger(t, "wrap-"+g)))
		runWG.Add(1)
		go func() {
			defer runWG.Done()
			if err := c.Run(runCtx, func(ctx context.Context, m *client.Message) error {
				st.deliveries.Add(1)
				return wrapped(ctx, m)
			}); err != nil {
				t.Errorf("group %s: Run: %v", g, err)
			}
		}()
	}
	t.Cleanup(func() { stopRun(); runWG.Wait() })

	// A new consumer group starts at the newest message when its first pull
	// reaches a broker: give both groups' first pulls to both broker groups
	// time to arrive before anything is sent (CI once lost that race under
	// load and group gb started after half the messages).
	time.Sleep(2 * time.Second)

	// Every message, then the first half again: the broker stores two
	// copies with one id.
	const dups = n / 2
	for round, batch := range [][]*client.Message{msgs, msgs[:dups]} {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := p.Send(sctx, batch...)
		cancel()
		if err != nil {
			t.Fatalf("send round %d: %v", round, err)
		}
	}
	copies := int64(n + dups)

	failures := int64(len(failFirst))
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for _, g := range groups {
			// Every copy, plus one retry per first-attempt failure.
			if stats[g].deliveries.Load() < copies+failures || count(t, db, "SELECT COUNT(DISTINCT msg_id) FROM effects WHERE grp = ?", g) < n {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for _, g := range groups {
				t.Logf("group %s: %d deliveries, %d handler calls, %d distinct effects", g, stats[g].deliveries.Load(), stats[g].calls.Load(),
					count(t, db, "SELECT COUNT(DISTINCT msg_id) FROM effects WHERE grp = ?", g))
			}
			t.Fatalf("not every copy and retry was delivered within 60s (want >= %d deliveries and %d effects per group)", copies+failures, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // let stragglers (late redeliveries) arrive
	stopRun()
	runWG.Wait()

	for _, g := range groups {
		st := stats[g]
		rows, err := db.QueryContext(ctx, "SELECT msg_id, COUNT(*) FROM effects WHERE grp = ? GROUP BY msg_id", g)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for rows.Next() {
			var id string
			var c int
			if err := rows.Scan(&id, &c); err != nil {
				t.Fatal(err)
			}
			got[id] = c
		}
		rows.Close()
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("group %s: message %s applied %d times; want exactly once", g, id, got[id])
			}
		}
		if len(got) != n {
			t.Errorf("group %s: effects for %d messages; want %d", g, len(got), n)
		}
		// Failed attempts ran the handler but rolled back; duplicates of
		// processed messages never reached it.
		if calls, d := st.calls.Load(), st.deliveries.Load(); calls != n+failures || d < copies+failures {
			t.Errorf("group %s: inner handler ran %d times for %d deliveries; want %d (each message once, plus its failed first attempt)", g, calls, d, n+failures)
		}
		// A message sent once whose first attempt failed can only have
		// succeeded from its %RETRY% copy: the retry kept the id, and the
		// key was free again after the failure.
		st.mu.Lock()
		fromRetry := 0
		for i, id := range ids {
			if i >= dups && failFirst[id] != "" {
				if st.succeeded[id] < 2 {
					t.Errorf("group %s: message %s (sent once, failed first) succeeded on attempt %d; want a retry copy (qmq_times >= 2)", g, id, st.succeeded[id])
				}
				fromRetry++
			}
		}
		st.mu.Unlock()
		t.Logf("group %s: %d deliveries, %d handler calls, %d messages succeeded from a retry copy", g, st.deliveries.Load(), st.calls.Load(), fromRetry)
	}
	if d := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); d != len(groups)*n {
		t.Errorf("%d dedup rows; want %d (one per message and group)", d, len(groups)*n)
	}
	for _, id := range ids[:1] {
		for _, g := range groups {
			if count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k = ?", subject+"%"+g+"%"+id) != 1 {
				t.Errorf("no dedup row %q: keys must be <subject>%%<group>%%<message id>", subject+"%"+g+"%"+id)
			}
		}
	}
}
