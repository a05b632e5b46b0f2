package delay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// maxLateness is how late after its due time a delay message may reach a
// consumer in these tests.
const maxLateness = 1500 * time.Millisecond

// arrival is one message as a consumer got it.
type arrival struct {
	id        string
	at        time.Time
	scheduled time.Time // the schedule time the message carries (zero: not a delay message)
}

// collector consumes subject with group g1 until the test ends.
type collector struct {
	mu    sync.Mutex
	got   map[string]arrival
	count map[string]int // deliveries by message id, duplicates included
}

func consume(t *testing.T, endpoint, subject string) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.NewConsumer(ctx, endpoint, subject, "g1",
		client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond),
		client.WithAckFlushInterval(100*time.Millisecond), client.WithRouteRefresh(time.Second),
		client.WithCloseWait(3*time.Second), client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		cancel()
		t.Fatalf("consumer: %v", err)
	}
	col := &collector{got: map[string]arrival{}, count: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, func(_ context.Context, m *client.Message) error {
			now := time.Now()
			col.mu.Lock()
			defer col.mu.Unlock()
			col.count[m.ID()]++
			if _, dup := col.got[m.ID()]; !dup {
				col.got[m.ID()] = arrival{id: m.ID(), at: now, scheduled: m.ScheduledAt()}
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; _ = c.Close() })
	return col
}

func (c *collector) snapshot() map[string]arrival {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]arrival, len(c.got))
	for k, v := range c.got {
		out[k] = v
	}
	return out
}

func (c *collector) waitFor(t *testing.T, d time.Duration, ids ...string) map[string]arrival {
	t.Helper()
	testutil.Eventually(t, d, fmt.Sprintf("messages %v to arrive", ids), func() bool {
		got := c.snapshot()
		for _, id := range ids {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
	return c.snapshot()
}

// checkOnTime fails unless each message arrived no earlier than it was due
// (the schedule time it carries, or notBefore when that is earlier: a time
// in the past is due on receipt) and within maxLateness after. It returns
// the lateness of each, for the log.
func checkOnTime(t *testing.T, got map[string]arrival, notBefore time.Time, ids ...string) []time.Duration {
	t.Helper()
	var late []time.Duration
	for _, id := range ids {
		a := got[id]
		due := notBefore
		if a.scheduled.After(due) {
			due = a.scheduled
		}
		l := a.at.Sub(due)
		switch {
		case l < 0:
			t.Errorf("message %s arrived %v before it was due (%s)", id, -l, due.Format(time.StampMilli))
		case l > maxLateness:
			t.Errorf("message %s arrived %v after it was due (%s); allowed %v", id, l, due.Format(time.StampMilli), maxLateness)
		}
		late = append(late, l)
	}
	return late
}

// rawSend sends one SEND_MESSAGE of msgs to addr and returns the answer.
func rawSend(t *testing.T, addr string, msgs ...protocol.Message) (protocol.Frame, []protocol.SendResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, protocol.DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var body []byte
	for i := range msgs {
		if body, err = protocol.AppendMessage(body, &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.Call(ctx, protocol.CodeSendMessage, body)
	if err != nil {
		t.Fatalf("SEND_MESSAGE to %s: %v", addr, err)
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return resp, nil
	}
	rs, err := protocol.DecodeSendResults(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, rs
}

func delayMessage(subject, id string, at int64) protocol.Message {
	return protocol.Message{Flag: protocol.MessageFlagDelay, CreateTime: time.Now().UnixMilli(), ExpireOrScheduleTime: at,
		Subject: subject, MessageID: id, Attrs: []protocol.Attr{{Key: "data", Value: "hello " + id}}}
}

// TestDelayMessagesArriveWhenDue: messages sent with delays of 1 s and 5 s,
// and with schedule times in the past or zero, reach a consumer through the
// real-time broker no earlier than due and within maxLateness after.
func TestDelayMessagesArriveWhenDue(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, nil)
	d.waitOnline()
	const subject = "delay.e2e.due"
	col := consume(t, m.Endpoint(), subject)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	sentAt := time.Now()
	m1 := p.NewMessage(subject).SetDelay(time.Second)
	m5 := p.NewMessage(subject).SetDelay(5 * time.Second)
	// Less than client.MinDelay ahead (here: in the past): sent real-time
	// by the producer, as QMQ's DelayUtil decides.
	mPast := p.NewMessage(subject).SetDelayUntil(sentAt.Add(-3 * time.Second))
	if err := p.Send(ctx, m1, m5, mPast); err != nil {
		t.Fatal(err)
	}
	// A producer that puts a past (or zero) schedule time on a delay
	// message anyway: the delay server makes it due now.
	_, rs := rawSend(t, d.srv.Addr().String(), delayMessage(subject, "raw-past", sentAt.Add(-time.Minute).UnixMilli()),
		delayMessage(subject, "raw-zero", 0))
	if len(rs) != 0 {
		t.Fatalf("delay server refused messages: %+v", rs)
	}

	got := col.waitFor(t, 15*time.Second, m1.ID(), m5.ID(), mPast.ID(), "raw-past", "raw-zero")
	if a := got[m1.ID()]; !a.scheduled.Equal(time.UnixMilli(m1.ScheduledAt().UnixMilli())) {
		t.Errorf("the consumer sees schedule time %v for %s, the producer set %v", a.scheduled, m1.ID(), m1.ScheduledAt())
	}
	if a := got[mPast.ID()]; !a.scheduled.IsZero() {
		t.Errorf("%s was sent real-time but carries a schedule time %v", mPast.ID(), a.scheduled)
	}
	ids := []string{m1.ID(), m5.ID(), mPast.ID(), "raw-past", "raw-zero"}
	late := checkOnTime(t, got, sentAt, ids...)
	for i, id := range ids {
		t.Logf("%-40s lateness %v", id, late[i].Round(time.Millisecond))
	}
	// Counted once the broker's acknowledgement is back, which may be after
	// the consumer got the message: 1 s, 5 s, raw-past, raw-zero (the past
	// one went real-time).
	testutil.Eventually(t, 5*time.Second, "the delay server to count 4 messages dispatched", func() bool { return d.srv.dispatched.Load() == 4 })

	// What an operator sees.
	var h healthReport
	if code := getJSON(t, "http://"+d.srv.HTTPAddr().String()+"/health", &h); code != http.StatusOK ||
		h.Status != "ok" || h.Role != "DELAY_MASTER" || h.Group != delayGroup || !h.Online || h.Dispatched != 4 || h.Pending != 0 || h.PendingInWindow != 0 || h.Parked != 0 {
		t.Errorf("/health %d %+v", code, h)
	}
	metrics := getText(t, "http://"+d.srv.HTTPAddr().String()+"/metrics")
	for _, want := range []string{"qmq_delay_received_total 4", "qmq_delay_dispatched_total 4", "qmq_delay_scheduled 0",
		"qmq_delay_due_lag_seconds 0", "qmq_delay_dispatch_lateness_seconds_count 4", "qmq_delay_store_appended_total 4"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDelayRestartWhilePending: messages stored and not yet due when the
// delay server restarts all arrive after it is back, on time.
func TestDelayRestartWhilePending(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, nil)
	d.waitOnline()
	const subject = "delay.e2e.restart"
	col := consume(t, m.Endpoint(), subject)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	sentAt := time.Now()
	var msgs []*client.Message
	var ids []string
	for i := range 20 {
		// Due 3 s on: well after the restart, even on a loaded machine.
		msg := p.NewMessage(subject).SetDelay(3*time.Second + time.Duration(i)*100*time.Millisecond)
		msgs = append(msgs, msg)
		ids = append(ids, msg.ID())
	}
	if err := p.Send(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	d.restart()
	d.waitOnline()
	got := col.waitFor(t, 20*time.Second, ids...)
	late := checkOnTime(t, got, sentAt, ids...)
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	t.Logf("20 messages across a restart: lateness min %v, median %v, max %v", late[0].Round(time.Millisecond),
		late[len(late)/2].Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond))
}

// TestConsumerRetryAtGoesThroughTheDelayServer: a handler that asks for
// its message again at a given time (client.RetryAt, QMQ's
// NeedRetryException) gets it back through the delay server, no earlier
// than asked and within maxLateness, as its second delivery.
func TestConsumerRetryAtGoesThroughTheDelayServer(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, nil)
	d.waitOnline()
	const subject = "delay.retry.at"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.NewConsumer(ctx, m.Endpoint(), subject, "g1",
		client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond),
		client.WithAckFlushInterval(100*time.Millisecond), client.WithRouteRefresh(time.Second),
		client.WithCloseWait(3*time.Second), client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		at    time.Time
		times int
	}
	got := make(chan delivery, 4)
	var retryAt time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, func(_ context.Context, msg *client.Message) error {
			now := time.Now()
			if msg.Times() == 1 {
				retryAt = now.Add(2 * time.Second) // written before the send on got: the test reads it after
				got <- delivery{at: now, times: 1}
				return client.RetryAt(retryAt)
			}
			got <- delivery{at: now, times: msg.Times()}
			return nil
		})
	}()
	defer func() { cancel(); <-done; _ = c.Close() }()

	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Send(ctx, p.NewMessage(subject)); err != nil {
		t.Fatal(err)
	}
	var first, second delivery
	for i, dst := range []*delivery{&first, &second} {
		select {
		case *dst = <-got:
		case <-time.After(15 * time.Second):
			t.Fatalf("delivery %d did not come", i+1)
		}
	}
	if second.times != 2 {
		t.Errorf("second delivery has Times()=%d, want 2", second.times)
	}
	if late := second.at.Sub(retryAt); late < 0 || late > maxLateness {
		t.Errorf("the retry came %v after the time asked for; want 0 to %v", late, maxLateness)
	} else {
		t.Logf("retry delivered %v after the time asked for", late.Round(time.Millisecond))
	}
	// Counted once the broker's acknowledgement is back, which may be after the consumer got it.
	testutil.Eventually(t, 5*time.Second, "the delay server to count the retry dispatched", func() bool { return d.srv.dispatched.Load() == 1 })
}
