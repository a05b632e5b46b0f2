package tx

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// End to end: a metaserver and a broker in-process (tests/framework), a
// producer, a consumer, and Senders on MariaDB and PostgreSQL.

// inbox is a consumer collecting what it receives, by message id.
type inbox struct {
	mu   sync.Mutex
	msgs map[string]*client.Message
}

func (b *inbox) get(id string) *client.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.msgs[id]
}

// startInbox runs a consumer of subject and returns once it receives
// messages: a new consumer group starts at the newest message when its
// first pull reaches the broker, so probes are sent until one arrives.
func startInbox(t *testing.T, cluster *framework.Cluster, p *client.Producer, subject string) *inbox {
	t.Helper()
	ctx := context.Background()
	c, err := client.NewConsumer(ctx, cluster.Endpoint(), subject, "txe2e",
		client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond),
		client.WithAckFlushInterval(100*time.Millisecond), client.WithRouteRefresh(time.Second), client.WithCloseWait(3*time.Second),
		client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	in := &inbox{msgs: map[string]*client.Message{}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(runCtx, func(_ context.Context, m *client.Message) error {
			in.mu.Lock()
			in.msgs[m.ID()] = m
			in.mu.Unlock()
			return nil
		}); err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	testutil.Eventually(t, 30*time.Second, "the consumer receives a probe", func() bool {
		probe := p.NewMessage(subject).SetProperty("probe", "1")
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := p.Send(sctx, probe); err != nil {
			return false
		}
		time.Sleep(300 * time.Millisecond)
		return in.get(probe.ID()) != nil
	})
	return in
}

// sameMessage reports how got differs from the sent message (properties
// and tags; a received message has a few more properties of its own).
func sameMessage(sent, got *client.Message) string {
	var diffs []string
	for k, v := range sent.Properties() {
		if g, ok := got.LookupProperty(k); !ok || g != v {
			diffs = append(diffs, fmt.Sprintf("property %s: got %q, sent %q", k, g, v))
		}
	}
	if st, gt := strings.Join(sent.Tags(), ","), strings.Join(got.Tags(), ","); st != gt {
		diffs = append(diffs, fmt.Sprintf("tags: got %q, sent %q", gt, st))
	}
	if got.Subject() != sent.Subject() {
		diffs = append(diffs, fmt.Sprintf("subject: got %q, sent %q", got.Subject(), sent.Subject()))
	}
	return strings.Join(diffs, "; ")
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	cluster := framework.StartCluster(t, framework.ClusterOptions{Groups: 1})
	p, err := client.NewProducer(ctx, cluster.Endpoint(), client.WithRouteRefresh(time.Second), client.WithSendTimeout(2*time.Second),
		client.WithMaxRetries(2), client.WithAppCode("tx-e2e"), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	})
	subject := fmt.Sprintf("tx.e2e.%d", time.Now().UnixNano())
	in := startInbox(t, cluster, p, subject)

	maria, pg := mariaDB(t), postgresDB(t)
	newSender := func(d testDB) *Sender {
		s, err := New(d.db, p, WithDialect(d.dialect), WithTable(d.table), WithRetryDelay(500*time.Millisecond, 2*time.Second),
			WithLogger(testlog.Logger(t, "tx-"+d.name, hclog.Warn)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Close(cctx); err != nil {
				t.Error(err)
			}
		})
		return s
	}
	senders := map[string]*Sender{maria.name: newSender(maria), pg.name: newSender(pg)}

	// A committed transaction's message arrives with its properties and
	// tags, and its row is gone; a rolled-back one never arrives.
	for _, d := range []testDB{maria, pg} {
		t.Run("commit and rollback on "+d.name, func(t *testing.T) {
			s, orders := senders[d.name], d.business(t)
			rolledBack := p.NewMessage(subject).SetProperty("order", "1").AddTag("rolled-back")
			t1, err := s.Begin(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := t1.ExecContext(ctx, "INSERT INTO "+orders+" (id, state) VALUES (1, 'paid')"); err != nil {
				t.Fatal(err)
			}
			if err := t1.Send(ctx, rolledBack); err != nil {
				t.Fatal(err)
			}
			if err := t1.Rollback(); err != nil {
				t.Fatal(err)
			}

			committed := p.NewMessage(subject).SetProperty("order", "2").SetProperty("query", "a=1&b=<2>").
				SetBody(strings.Repeat("ünïcode body ", 1000)).AddTag("paid").AddTag("vip")
			if err := s.Run(ctx, nil, func(ctx context.Context, t2 *Tx) error {
				if _, err := t2.ExecContext(ctx, "INSERT INTO "+orders+" (id, state) VALUES (2, 'paid')"); err != nil {
					return err
				}
				return t2.Send(ctx, committed)
			}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 20*time.Second, "the committed message arrives", func() bool { return in.get(committed.ID()) != nil })
			if diff := sameMessage(committed, in.get(committed.ID())); diff != "" {
				t.Fatalf("received message differs: %s", diff)
			}
			testutil.Eventually(t, 10*time.Second, "its row is deleted", func() bool { return len(d.rows(t)) == 0 })
			time.Sleep(2 * time.Second) // the rolled-back one was handed over first, if at all
			if in.get(rolledBack.ID()) != nil {
				t.Fatal("a rolled-back transaction's message arrived")
			}
		})
	}

	// Broker down at commit: the row stays, status 0 and error raised, and
	// the Sender's own retry sends it once the broker is back.
	t.Run("broker down at commit", func(t *testing.T) {
		s, master := senders[maria.name], cluster.Groups()[0].Master
		master.Stop()
		m := p.NewMessage(subject).SetProperty("order", "3").AddTag("late")
		if err := s.Run(ctx, nil, func(ctx context.Context, t1 *Tx) error { return t1.Send(ctx, m) }); err != nil {
			t.Fatal(err)
		}
		testutil.EventuallyState(t, 30*time.Second, "the row is kept, status 0, error >= 1", func() (bool, string) {
			rows := maria.rows(t)
			return len(rows) == 1 && rows[0].status == StatusPending && rows[0].error >= 1, fmt.Sprintf("%+v", rows)
		})
		if in.get(m.ID()) != nil {
			t.Fatal("message arrived while the broker was down")
		}
		master.Start()
		cluster.WaitOnline()
		testutil.Eventually(t, 60*time.Second, "the message arrives after the broker is back", func() bool { return in.get(m.ID()) != nil })
		if diff := sameMessage(m, in.get(m.ID())); diff != "" {
			t.Fatalf("received message differs: %s", diff)
		}
		testutil.Eventually(t, 10*time.Second, "its row is deleted", func() bool { return len(maria.rows(t)) == 0 })
	})

	// A row written the Java way (the golden content, on this test's
	// subject, without the delay this cluster cannot serve) decodes to the
	// message Java meant, and a watchdog-style resend delivers it intact.
	t.Run("Java row resent", func(t *testing.T) {
		id := fmt.Sprintf("241207.133000.10.88.1.7.4242.%d", time.Now().UnixNano())
		content := strings.NewReplacer(`"order.paid"`, `"`+subject+`"`, `"241207.133000.10.88.1.7.4242.17"`, `"`+id+`"`,
			`"qmq_scheduleReceiveTime":"1733578800000",`, "").Replace(javaRow)
		if _, err := maria.db.ExecContext(ctx, "INSERT INTO "+maria.table+" (content, create_time) VALUES (?, NOW())", content); err != nil {
			t.Fatal(err)
		}
		rows := maria.rows(t)
		if len(rows) != 1 {
			t.Fatalf("rows %+v", rows)
		}
		m, err := Decode([]byte(rows[0].content))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range javaProps {
			if k != client.PropScheduleReceive {
				want[k] = v
			}
		}
		sent := client.RestoreMessage(subject, id, want, []string{"vip", "cn"})
		if diff := sameMessage(sent, m); diff != "" {
			t.Fatalf("decoded Java row differs: %s", diff)
		}
		if in.get(id) != nil {
			t.Fatal("the Java row's message arrived before it was sent")
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.Send(sctx, m); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 20*time.Second, "the Java row's message arrives", func() bool { return in.get(id) != nil })
		if diff := sameMessage(sent, in.get(id)); diff != "" {
			t.Fatalf("received Java message differs: %s", diff)
		}
	})
}
