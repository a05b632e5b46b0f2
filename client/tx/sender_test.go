package tx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// fakeProducer stands in for the brokers: outcome decides each send's
// result (nil: stored), release (if not nil) holds sends until closed.
type fakeProducer struct {
	mu      sync.Mutex
	outcome func(m *client.Message, try int) error
	tries   map[string]int
	sent    []*client.Message
	release chan struct{}
}

func (f *fakeProducer) SendAsync(m *client.Message, done func(*client.Message, error)) error {
	go func() {
		if f.release != nil {
			<-f.release
		}
		f.mu.Lock()
		if f.tries == nil {
			f.tries = map[string]int{}
		}
		f.tries[m.ID()]++
		var err error
		if f.outcome != nil {
			err = f.outcome(m, f.tries[m.ID()])
		}
		if err == nil {
			f.sent = append(f.sent, m)
		}
		f.mu.Unlock()
		done(m, err)
	}()
	return nil
}

func (f *fakeProducer) sentIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.sent))
	for i, m := range f.sent {
		ids[i] = m.ID()
	}
	return ids
}

// forEachDB runs a test against MariaDB and PostgreSQL.
func forEachDB(t *testing.T, test func(t *testing.T, d testDB)) {
	for _, open := range []func(testing.TB) testDB{mariaDB, postgresDB} {
		d := open(t)
		t.Run(d.name, func(t *testing.T) { test(t, d) })
	}
}

func newTestSender(t *testing.T, d testDB, p asyncSender, opts ...Option) *Sender {
	t.Helper()
	opts = append([]Option{WithDialect(d.dialect), WithTable(d.table)}, opts...)
	s, err := newSender(d.db, p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

var msgSeq int

func testMessage(subject string) *client.Message {
	msgSeq++
	return client.RestoreMessage(subject, fmt.Sprintf("241207.133000.127.0.0.1.1.%d", msgSeq),
		map[string]string{client.PropCreateTime: fmt.Sprint(time.Now().UnixMilli()), "k": "v"}, []string{"t1"})
}

func TestCommitSendsAndDeletes(t *testing.T) {
	forEachDB(t, func(t *testing.T, d testDB) {
		orders := d.business(t)
		p := &fakeProducer{release: make(chan struct{})}
		s := newTestSender(t, d, p)
		ctx := context.Background()
		t1, err := s.Begin(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := t1.ExecContext(ctx, "INSERT INTO "+orders+" (id, state) VALUES (1, 'paid')"); err != nil {
			t.Fatal(err)
		}
		m1, m2 := testMessage("order.paid"), testMessage("order.paid")
		if err := t1.Send(ctx, m1, m2); err != nil {
			t.Fatal(err)
		}
		if rows := d.rows(t); len(rows) != 0 {
			t.Fatalf("rows visible before commit: %v", rows)
		}
		if err := t1.Commit(); err != nil {
			t.Fatal(err)
		}
		// Sends are held: the committed rows are there, as QMQ writes them.
		rows := d.rows(t)
		if len(rows) != 2 || rows[0].content != string(Encode(m1)) || rows[1].content != string(Encode(m2)) || rows[0].status != 0 || rows[0].error != 0 {
			t.Fatalf("rows after commit: %+v", rows)
		}
		close(p.release)
		testutil.Eventually(t, 10*time.Second, "rows of sent messages deleted", func() bool { return len(d.rows(t)) == 0 })
		if ids := p.sentIDs(); len(ids) != 2 {
			t.Fatalf("sent %v", ids)
		}
		if err := t1.Send(ctx, testMessage("order.paid")); !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("Send after Commit: %v", err)
		}
	})
}

func TestRollbackSendsNothing(t *testing.T) {
	forEachDB(t, func(t *testing.T, d testDB) {
		p := &fakeProducer{}
		s := newTestSender(t, d, p)
		ctx := context.Background()
		t1, err := s.Begin(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := t1.Send(ctx, testMessage("order.paid")); err != nil {
			t.Fatal(err)
		}
		if err := t1.Rollback(); err != nil {
			t.Fatal(err)
		}
		// Run: an error and a panic roll back too.
		boom := errors.New("business rule violated")
		if err := s.Run(ctx, nil, func(ctx context.Context, t2 *Tx) error {
			if err := t2.Send(ctx, testMessage("order.paid")); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("Run returned %v", err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = s.Run(ctx, nil, func(ctx context.Context, t3 *Tx) error {
				if err := t3.Send(ctx, testMessage("order.paid")); err != nil {
					return err
				}
				panic("handler bug")
			})
		}()
		time.Sleep(200 * time.Millisecond)
		if ids := p.sentIDs(); len(ids) != 0 {
			t.Fatalf("rolled-back messages sent: %v", ids)
		}
		if rows := d.rows(t); len(rows) != 0 {
			t.Fatalf("rows after rollback: %v", rows)
		}
		// And Run commits and sends when fn succeeds.
		if err := s.Run(ctx, nil, func(ctx context.Context, t4 *Tx) error { return t4.Send(ctx, testMessage("order.paid")) }); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the committed message sent", func() bool { return len(p.sentIDs()) == 1 && len(d.rows(t)) == 0 })
	})
}

func TestBlockMarksRow(t *testing.T) {
	forEachDB(t, func(t *testing.T, d testDB) {
		p := &fakeProducer{outcome: func(m *client.Message, _ int) error {
			return &client.SendError{Subject: m.Subject(), MessageID: m.ID(), Code: client.CodeBlock, Remark: "not allowed", Tries: 1}
		}}
		s := newTestSender(t, d, p, WithRetryDelay(50*time.Millisecond, 50*time.Millisecond))
		ctx := context.Background()
		if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, testMessage("order.paid")) }); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "row marked status -100, error 1", func() bool {
			rows := d.rows(t)
			return len(rows) == 1 && rows[0].status == StatusBlocked && rows[0].error == 1
		})
		time.Sleep(300 * time.Millisecond) // no retry of a refused message
		p.mu.Lock()
		defer p.mu.Unlock()
		for id, n := range p.tries {
			if n != 1 {
				t.Fatalf("message %s tried %d times after BLOCK", id, n)
			}
		}
	})
}

func TestFailedSendRetried(t *testing.T) {
	forEachDB(t, func(t *testing.T, d testDB) {
		var mu sync.Mutex
		down := true
		p := &fakeProducer{outcome: func(m *client.Message, _ int) error {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return &client.SendError{Subject: m.Subject(), MessageID: m.ID(), Code: client.CodeNoAnswer, Err: errors.New("connection refused")}
			}
			return nil
		}}
		s := newTestSender(t, d, p, WithRetryDelay(100*time.Millisecond, 200*time.Millisecond))
		ctx := context.Background()
		if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, testMessage("order.paid")) }); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "row kept with status 0 and its error count raised", func() bool {
			rows := d.rows(t)
			return len(rows) == 1 && rows[0].status == StatusPending && rows[0].error >= 2
		})
		mu.Lock()
		down = false
		mu.Unlock()
		testutil.Eventually(t, 10*time.Second, "sent by a retry and deleted", func() bool { return len(d.rows(t)) == 0 && len(p.sentIDs()) == 1 })
	})
}

func TestNoRetryLeavesRowsForWatchdog(t *testing.T) {
	d := mariaDB(t)
	p := &fakeProducer{outcome: func(m *client.Message, _ int) error {
		return &client.SendError{Subject: m.Subject(), MessageID: m.ID(), Code: client.CodeNoAnswer, Err: errors.New("timeout")}
	}}
	s := newTestSender(t, d, p, WithRetryDelay(0, 0))
	ctx := context.Background()
	if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, testMessage("order.paid")) }); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "failed row kept with error 1", func() bool {
		rows := d.rows(t)
		return len(rows) == 1 && rows[0].error == 1
	})
	time.Sleep(300 * time.Millisecond)
	if rows := d.rows(t); len(rows) != 1 || rows[0].error != 1 || rows[0].status != StatusPending {
		t.Fatalf("rows %+v: want one, status 0, error 1 (no retries)", rows)
	}
	// After Close, committed messages are not sent: their rows wait.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, testMessage("order.paid")) }); err != nil {
		t.Fatal(err)
	}
	if rows := d.rows(t); len(rows) != 2 {
		t.Fatalf("rows %+v: want two", rows)
	}
}

func TestInvalidMessageNotStored(t *testing.T) {
	d := mariaDB(t)
	s := newTestSender(t, d, &fakeProducer{})
	ctx := context.Background()
	t1, err := s.Begin(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Rollback()
	err = t1.Send(ctx, client.RestoreMessage(client.RetrySubject("order.paid", "g"), "id-1", nil, nil))
	if err == nil || !strings.Contains(err.Error(), "message not stored") {
		t.Fatalf("Send of a retry-subject message: %v", err)
	}
	if err := t1.Send(ctx, testMessage("order.paid")); err != nil { // the transaction is still usable
		t.Fatal(err)
	}
}

func TestOptionsChecked(t *testing.T) {
	d := mariaDB(t)
	for _, c := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithTable("qmq_produce.qmq_msg_queue; DROP TABLE x")}, "is not an identifier"},
		{[]Option{WithTable("a.b.c")}, "is not an identifier"},
		{[]Option{WithDialect(Dialect(7))}, "unknown dialect Dialect(7)"},
	} {
		if _, err := newSender(d.db, &fakeProducer{}, c.opts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("newSender: %v, want %q", err, c.want)
		}
	}
	if _, err := New(d.db, nil); err == nil {
		t.Error("New accepted a nil producer")
	}
}

func TestRetryLimit(t *testing.T) {
	d := mariaDB(t)
	p := &fakeProducer{outcome: func(m *client.Message, _ int) error {
		return &client.SendError{Subject: m.Subject(), MessageID: m.ID(), Code: client.CodeNoAnswer, Err: errors.New("timeout")}
	}}
	s := newTestSender(t, d, p, WithRetryDelay(20*time.Millisecond, 20*time.Millisecond), WithRetryLimit(3))
	ctx := context.Background()
	m := testMessage("order.paid")
	if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyState(t, 10*time.Second, "four failed sends counted in the row", func() (bool, string) {
		rows := d.rows(t)
		return len(rows) == 1 && rows[0].error == 4, fmt.Sprintf("%+v", rows)
	})
	time.Sleep(300 * time.Millisecond)
	p.mu.Lock()
	tries := p.tries[m.ID()]
	p.mu.Unlock()
	if rows := d.rows(t); tries != 4 || len(rows) != 1 || rows[0].error != 4 || rows[0].status != StatusPending {
		t.Fatalf("%d tries, rows %+v: want 4 tries (1 + 3 retries) and the row kept for the watchdog with error 4", tries, rows)
	}
}

func TestWrapForeignTransaction(t *testing.T) {
	d := postgresDB(t)
	p := &fakeProducer{}
	s := newTestSender(t, d, p)
	ctx := context.Background()
	sqlTx, err := d.db.BeginTx(ctx, nil) // begun by a framework, say
	if err != nil {
		t.Fatal(err)
	}
	t1 := s.Wrap(sqlTx)
	if err := t1.Send(ctx, testMessage("order.paid")); err != nil {
		t.Fatal(err)
	}
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the wrapped transaction's message sent and its row deleted", func() bool {
		return len(p.sentIDs()) == 1 && len(d.rows(t)) == 0
	})
}

func TestCloseGivesUp(t *testing.T) {
	d := mariaDB(t)
	p := &fakeProducer{release: make(chan struct{})}
	s, err := newSender(d.db, p, WithTable(d.table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, testMessage("order.paid")) }); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := s.Close(cctx); err == nil || !strings.Contains(err.Error(), "gave up waiting for sends under way") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a send held: %v", err)
	}
	close(p.release) // the held send ends after Close gave up: its row stays, and the watchdog sends it again (at least once)
	time.Sleep(200 * time.Millisecond)
	if rows := d.rows(t); len(rows) != 1 {
		t.Fatalf("rows %+v: want the unsent row kept", rows)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
