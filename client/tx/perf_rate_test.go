//go:build perf

package tx

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// TestPerfTransactionalSendRate is the performance line
// "commit-to-delivery latency when the application stays up: p99 < 20 ms
// at 1,000 tx/s on MariaDB". Business transactions (BEGIN, an UPDATE of
// one of 1,000 rows, a transactional send, COMMIT) are started open-loop
// on a fixed schedule, QMQ_PERF_TX_RATE per second (default 1,000) for
// QMQ_PERF_SECONDS (default 10) after a 1 s warm-up, by up to
// QMQ_PERF_WORKERS (default 64) concurrent business transactions: a slow
// transaction delays none of the next ones' starts, it only occupies a
// worker (a start finding every worker busy waits, and that wait is
// reported as the schedule lag). As the peer, in the same run and
// interleaved on the same schedule, plain sends: a business transaction
// and, after its commit, a synchronous Producer.Send, at
// QMQ_PERF_PLAIN_RATE per second (default 100, a tenth, so that the peer
// samples the same load without doubling it).
//
// Reported: the achieved rates; commit-to-delivery (Commit's return to
// the consumer's handler) of the transactional messages, and
// send-to-delivery (Send's start to the handler) of the plain ones,
// p50/p99/max; the commit's own duration; the schedule lag. Everything
// shares one process and the machine's cores: the metaserver, the broker,
// the producer, the consumer, the database and the load.
func TestPerfTransactionalSendRate(t *testing.T) {
	rate := testutil.EnvInt(t, "QMQ_PERF_TX_RATE", 1000)
	plainRate := testutil.EnvInt(t, "QMQ_PERF_PLAIN_RATE", 100)
	seconds := testutil.EnvInt(t, "QMQ_PERF_SECONDS", 10)
	workers := testutil.EnvInt(t, "QMQ_PERF_WORKERS", 64)
	const accounts = 1000
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
	subject := fmt.Sprintf("tx.perfrate.%d", time.Now().UnixNano())

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
	d.db.SetMaxIdleConns(workers)
	table := d.business(t)
	for i := 0; i < accounts; i += 100 {
		q := "INSERT INTO " + table + " (id, state) VALUES "
		for j := i; j < i+100; j++ {
			if j > i {
				q += ","
			}
			q += fmt.Sprintf("(%d, 'open')", j)
		}
		if _, err := d.db.Exec(q); err != nil {
			t.Fatal(err)
		}
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
	update := "UPDATE " + table + " SET state = ? WHERE id = ?"

	// One schedule: op i is due at start + i/total, and is plain when
	// its slot falls on the plain rate's share.
	total := rate + plainRate
	interval := time.Second / time.Duration(total)
	warm := total // 1 s
	n := warm + total*seconds
	type outcome struct {
		plain          bool
		m              *client.Message
		due, begun     time.Time
		committed, end time.Time // end: after Send for plain ones
		err            error
	}
	outs := make([]outcome, n)
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				o := &outs[i]
				o.begun = time.Now()
				o.m = p.NewMessage(subject).SetProperty("i", strconv.Itoa(i))
				err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error {
					if _, err := t1.ExecContext(ctx, update, strconv.Itoa(i), i%accounts); err != nil {
						return err
					}
					if o.plain {
						return nil
					}
					return t1.Send(ctx, o.m)
				})
				o.committed = time.Now()
				if err == nil && o.plain {
					err = p.Send(ctx, o.m)
				}
				o.end, o.err = time.Now(), err
			}
		}()
	}
	plainEvery := 0
	if plainRate > 0 {
		plainEvery = total / plainRate
	}
	start := time.Now()
	for i := range n {
		o := &outs[i]
		o.due = start.Add(time.Duration(i) * interval)
		o.plain = plainEvery > 0 && i%plainEvery == plainEvery-1
		if w := time.Until(o.due); w > 0 {
			time.Sleep(w)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start.Add(time.Duration(warm) * interval))

	var txLat, plainLat, commitTook, plainSendTook, lag []time.Duration
	var txN, plainN int
	var lastEnd time.Time
	deadline := time.Now().Add(60 * time.Second)
	for {
		txLat, plainLat, commitTook, plainSendTook, lag = nil, nil, nil, nil, nil
		txN, plainN = 0, 0
		missing := 0
		mu.Lock()
		for i := warm; i < n; i++ {
			o := &outs[i]
			if o.err != nil {
				mu.Unlock()
				t.Fatalf("operation %d: %v", i, o.err)
			}
			lag = append(lag, o.begun.Sub(o.due))
			if o.end.After(lastEnd) {
				lastEnd = o.end
			}
			at, ok := arrived[o.m.ID()]
			if !ok {
				missing++
				continue
			}
			if o.plain {
				plainN++
				plainLat = append(plainLat, at.Sub(o.committed))
				plainSendTook = append(plainSendTook, o.end.Sub(o.committed))
			} else {
				txN++
				txLat = append(txLat, at.Sub(o.committed))
				commitTook = append(commitTook, o.committed.Sub(o.begun))
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d messages did not arrive within 60 s", missing)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var left int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := d.db.QueryRow("SELECT COUNT(*) FROM " + d.table).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("MariaDB, open loop: asked %d tx/s transactional + %d tx/s plain for %d s (after 1 s warm-up), %d workers, GOMAXPROCS %d",
		rate, plainRate, seconds, workers, runtime.GOMAXPROCS(0))
	t.Logf("  achieved: %.0f transactional tx/s, %.0f plain tx/s (all started and committed by +%v)",
		float64(txN)/elapsed.Seconds(), float64(plainN)/elapsed.Seconds(), lastEnd.Sub(start).Round(time.Millisecond))
	t.Logf("  schedule lag (due → a worker began):         %s", stats(lag))
	t.Logf("  transactional business tx (BEGIN..COMMIT):   %s", stats(commitTook))
	t.Logf("  commit-to-delivery, transactional:           %s", stats(txLat))
	t.Logf("  commit-to-delivery, plain (Send after COMMIT): %s", stats(plainLat))
	t.Logf("  plain Producer.Send alone:                   %s", stats(plainSendTook))
	t.Logf("  rows left in the table: %d", left)
	if left != 0 {
		t.Errorf("%d rows left after every message was delivered", left)
	}
}
