package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

func newTestConsumer(t *testing.T, endpoint, subject, group string, opts ...ConsumerOption) *Consumer {
	t.Helper()
	opts = append([]ConsumerOption{WithLogger(testLogger(t, "client")), WithPullTimeout(200 * time.Millisecond),
		WithAckFlushInterval(50 * time.Millisecond), WithClientID("c-" + t.Name())}, opts...)
	c, err := NewConsumer(context.Background(), endpoint, subject, group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendN(t *testing.T, p *Producer, subject string, n int, tag func(i int) string) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		m := p.NewMessage(subject).SetProperty("i", fmt.Sprint(i))
		if tag != nil {
			if tg := tag(i); tg != "" {
				m.AddTag(tg)
			}
		}
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID())
	}
	return ids
}

func pullAll(t *testing.T, c *Consumer, n int) []*Message {
	t.Helper()
	var out []*Message
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(out) < n {
		ms, err := c.Pull(ctx, n-len(out))
		if err != nil {
			t.Fatalf("pull: %v (have %d of %d)", err, len(out), n)
		}
		out = append(out, ms...)
	}
	return out
}

func TestPullAndAckRanges(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	ids := sendN(t, p, "pa", 6, nil)
	c := newTestConsumer(t, endpoint, "pa", "grp", WithPullBatch(10))
	ms := pullAll(t, c, 6)
	slices.SortFunc(ms, func(a, b *Message) int { return int(a.pullOffset - b.pullOffset) })
	for i, m := range ms {
		if m.ID() != ids[i] || m.Subject() != "pa" || m.Property("i") != fmt.Sprint(i) || m.Times() != 1 || m.Property(PropConsumerGroup) != "grp" {
			t.Fatalf("message %d: %s %s %v", i, m.ID(), m.Subject(), m.Properties())
		}
	}
	// Ack 2, 0, 1: only the prefix 0..2 may be acknowledged.
	ms[2].Ack(nil)
	ms[0].Ack(nil)
	time.Sleep(150 * time.Millisecond)
	if r := b.ackRanges("pa"); len(r) != 1 || r[0] != [2]int64{0, 0} {
		t.Fatalf("after acking 2 and 0: %v", r)
	}
	ms[1].Ack(nil)
	ms[1].Ack(errors.New("second ack ignored"))
	testutil.Eventually(t, 2*time.Second, "ack 1..2", func() bool { r := b.ackRanges("pa"); return len(r) == 2 && r[1] == [2]int64{1, 2} })
	ms[5].Ack(nil)
	ms[4].Ack(nil)
	ms[3].Ack(nil) // completes everything pulled: sent at once
	testutil.Eventually(t, 2*time.Second, "ack 3..5", func() bool { r := b.ackRanges("pa"); return len(r) == 3 && r[2] == [2]int64{3, 5} })
	// The broker records an ack before answering it, and the client moves
	// its first unacknowledged offset on the answer: wait for that too.
	testutil.Eventually(t, 2*time.Second, "the answer to ack 3..5", func() bool {
		c.mu.Lock()
		q := c.queues[queueKey{subject: "pa", brokerGroup: "g1"}]
		c.mu.Unlock()
		begin, _ := q.offsets()
		return begin == 6
	})
	// The next pull reports what was acked and received.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ms, err := c.Pull(ctx, 1); err != nil || len(ms) != 0 {
		t.Fatalf("extra messages: %v %v", ms, err)
	}
	// A long poll sent before the ack's answer may reach the broker after
	// it; the pulls that follow report the new offsets.
	testutil.EventuallyState(t, 5*time.Second, "a pull reporting offsets begin 6 last 5", func() (bool, string) {
		b.mu.Lock()
		last := b.pulls[len(b.pulls)-1]
		b.mu.Unlock()
		return last.Subject != "pa" || (last.PullOffsetBegin == 6 && last.PullOffsetLast == 5),
			fmt.Sprintf("last pull: begin %d last %d", last.PullOffsetBegin, last.PullOffsetLast)
	})
}

func TestRunRetryThenDeadLetter(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	sendN(t, p, "rt", 1, nil)
	c := newTestConsumer(t, endpoint, "rt", "grp", WithMaxRetries(2), WithConcurrency(2))
	var mu sync.Mutex
	var times []int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(ctx context.Context, m *Message) error {
			mu.Lock()
			times = append(times, m.Times())
			n := len(times)
			mu.Unlock()
			if m.Subject() != "rt" {
				t.Errorf("subject %q", m.Subject())
			}
			if n == 2 {
				panic("boom") // a panic counts as failure
			}
			return errors.New("fail")
		})
	}()
	testutil.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(b.stored(DeadLetterSubject("rt", "grp"))) == 1 })
	retry := b.stored(RetrySubject("rt", "grp"))
	if len(retry) != 1 || attr(retry[0], PropTimes) != "2" || attr(retry[0], PropConsumerGroup) != "grp" {
		t.Fatalf("retry copies: %+v", retry)
	}
	dead := b.stored(DeadLetterSubject("rt", "grp"))[0]
	if attr(dead, PropTimes) != "3" || attr(dead, "i") != "0" {
		t.Fatalf("dead letter %+v", dead)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(times, []int{1, 2}) {
		t.Fatalf("handler saw times %v", times)
	}
	// Every pulled message was acknowledged after its copy was stored.
	if r := b.ackRanges("rt"); len(r) != 1 || r[0] != [2]int64{0, 0} {
		t.Fatalf("acks of rt: %v", r)
	}
	if r := b.ackRanges(RetrySubject("rt", "grp")); len(r) != 1 || r[0] != [2]int64{0, 0} {
		t.Fatalf("acks of retry subject: %v", r)
	}
}

func TestRunGracefulShutdown(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b2 := startBroker(t, "g2", mc)
	p := newTestProducer(t, endpoint)
	sendN(t, p, "gs", 40, nil)
	c := newTestConsumer(t, endpoint, "gs", "grp", WithConcurrency(4), WithPullBatch(5))
	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	var mu sync.Mutex
	offsets := map[string]map[int64]bool{}
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(hctx context.Context, m *Message) error {
			mu.Lock()
			if offsets[m.brokerGroup] == nil {
				offsets[m.brokerGroup] = map[int64]bool{}
			}
			offsets[m.brokerGroup][m.pullOffset] = true
			mu.Unlock()
			if handled.Add(1) >= 10 {
				cancel()
				time.Sleep(100 * time.Millisecond) // in flight during shutdown: must still be acked
				if hctx.Err() != nil {
					t.Error("handler context cancelled at shutdown")
				}
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	// Each broker got acks for exactly the handled prefix of its pull log
	// (range acks cannot skip a message that was pulled but not handled).
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, b := range []*fakeBroker{b1, b2} {
		prefix := int64(0)
		for offsets[b.group][prefix] {
			prefix++
		}
		next := int64(0)
		for _, r := range b.ackRanges("gs") {
			if r[0] != next {
				t.Fatalf("%s: ack ranges not contiguous: %v", b.group, b.ackRanges("gs"))
			}
			next = r[1] + 1
		}
		if next != prefix {
			t.Fatalf("%s: acked up to %d, handled prefix %d (handled %v)", b.group, next, prefix, offsets[b.group])
		}
		total += int(prefix)
	}
	if total == 0 || int64(total) > handled.Load() {
		t.Fatalf("acked %d of %d handled", total, handled.Load())
	}
	if _, err := c.Pull(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Run: %v", err)
	}
}

func TestTagsAtMostOnceAndForeignGroup(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	sendN(t, p, "tg", 6, func(i int) string { return []string{"red", "blue", ""}[i%3] })
	// A delayed retry of another group on the real subject must be skipped.
	foreign := p.NewMessage("tg").SetProperty(PropConsumerGroup, "other").AddTag("red")
	if err := p.Send(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	c := newTestConsumer(t, endpoint, "tg", "grp", WithTags(TagOr, "red"), WithConsumeAtMostOnce())
	ms := pullAll(t, c, 2)
	for _, m := range ms {
		if !slices.Contains(m.Tags(), "red") {
			t.Fatalf("tag filter: %v", m.Tags())
		}
		m.Ack(errors.New("ignored: at most once"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if ms, _ := c.Pull(ctx, 10); len(ms) != 0 {
		t.Fatalf("got %d more (foreign group's retry leaked?)", len(ms))
	}
	testutil.Eventually(t, 2*time.Second, "auto acks", func() bool {
		n := 0
		for _, r := range b.ackRanges("tg") {
			n += int(r[1] - r[0] + 1)
		}
		return n == 3
	})
	if n := len(b.stored(RetrySubject("tg", "grp"))); n != 0 {
		t.Fatalf("at-most-once retried %d", n)
	}
}

func TestLostPullIsReportedForRedelivery(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	ids := sendN(t, p, "lost", 3, nil)
	// A consumer with the same client id pulled 0..2 and died without acking.
	c1 := newTestConsumer(t, endpoint, "lost", "grp")
	pullAll(t, c1, 3)
	c1.Close()
	c2 := newTestConsumer(t, endpoint, "lost", "grp") // same client id (test name)
	ms := pullAll(t, c2, 3)
	for i, m := range ms {
		if m.ID() != ids[i] {
			t.Fatalf("redelivered %v", m.ID())
		}
		m.Ack(nil)
	}
	testutil.Eventually(t, 2*time.Second, "acks", func() bool { r := b.ackRanges("lost"); return len(r) > 0 && r[len(r)-1][1] == 2 })
}

// A broker group that leaves a consumer's route (readonly, offline) and
// comes back while its puller is still handing a batch to the application:
// the returning group's new puller waits for the old one, which delivers
// its whole batch although cancelled. Every message arrives once, and the
// acks of the group reach its last message.
func TestGroupLeavingAndRejoiningTheRouteMidBatch(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	ids := sendN(t, p, "rejoin", 5, nil)
	// Batches of 2 and room for 2: the puller hands over [0 1], pulls [2 3]
	// and waits for room while nobody pulls.
	c := newTestConsumer(t, endpoint, "rejoin", "grp", WithPullBatch(2))
	got := pullAll(t, c, 1)
	k := queueKey{subject: "rejoin", brokerGroup: "g1"}
	testutil.Eventually(t, 5*time.Second, "the puller holding [2 3]", func() bool {
		c.mu.Lock()
		q := c.queues[k]
		c.mu.Unlock()
		_, last := q.offsets()
		return last == 3 && len(c.msgs) == cap(c.msgs)
	})

	// The group leaves the route and comes back (as a route refresh would
	// see it), with the old puller still blocked on [2 3].
	rk := c.routeKey("rejoin")
	c.r.mu.Lock()
	rt := c.r.routes[rk]
	c.r.mu.Unlock()
	setRoute := func(groups []protocol.BrokerGroupInfo) {
		rt.refreshMu.Lock()
		rt.groups, rt.fetched, rt.stale = groups, time.Now(), false
		rt.refreshMu.Unlock()
		c.syncPullers()
	}
	rt.refreshMu.Lock()
	groups := rt.groups
	rt.refreshMu.Unlock()
	b.mu.Lock()
	pullsBefore := b.pullReqs["rejoin"]
	b.mu.Unlock()
	setRoute(nil)
	setRoute(groups)
	time.Sleep(300 * time.Millisecond)
	b.mu.Lock()
	pullsDuring := b.pullReqs["rejoin"] - pullsBefore
	b.mu.Unlock()
	if pullsDuring != 0 {
		t.Fatalf("%d pulls were sent for (rejoin, g1) while the previous puller had not handed over its batch", pullsDuring)
	}

	got = append(got, pullAll(t, c, 4)...)
	seen := map[string]bool{}
	for _, m := range got {
		if seen[m.ID()] {
			t.Fatalf("message %s delivered twice", m.ID())
		}
		seen[m.ID()] = true
		m.Ack(nil)
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("message %s never delivered (got %d of %d)", id, len(got), len(ids))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if extra, err := c.Pull(ctx, 1); err != nil || len(extra) != 0 {
		t.Fatalf("after all 5: %d more messages, %v", len(extra), err)
	}
	testutil.Eventually(t, 2*time.Second, "acks up to offset 4", func() bool { r := b.ackRanges("rejoin"); return len(r) > 0 && r[len(r)-1][1] == 4 })
}

func TestBroadcastAndValidation(t *testing.T) {
	endpoint, mc := startMeta(t)
	startBroker(t, "g1", mc)
	if _, err := NewConsumer(context.Background(), endpoint, "s", ""); err == nil {
		t.Fatal("empty group accepted")
	}
	p := newTestProducer(t, endpoint)
	sendN(t, p, "bc", 2, nil)
	c1 := newTestConsumer(t, endpoint, "bc", "grp", WithBroadcast(), WithClientID("b1"))
	c2 := newTestConsumer(t, endpoint, "bc", "grp", WithBroadcast(), WithClientID("b2"))
	_ = c2
	if len(c1.subjects) != 1 {
		t.Fatal("broadcast consumers do not pull the retry subject")
	}
	for _, m := range pullAll(t, c1, 2) {
		m.Ack(nil)
	}
	if err := c1.Run(context.Background(), nil); err == nil {
		t.Fatal("Run after Pull accepted")
	}
}

func TestRetryAtWithoutDelayGroupRetriesNormally(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	sendN(t, p, "ra", 1, nil)
	c := newTestConsumer(t, endpoint, "ra", "grp")
	ms := pullAll(t, c, 1)
	ms[0].Ack(RetryAt(time.Now().Add(time.Minute)))
	testutil.Eventually(t, 5*time.Second, "retry copy", func() bool { return len(b.stored(RetrySubject("ra", "grp"))) == 1 })
	testutil.Eventually(t, 2*time.Second, "ack after retry send", func() bool { return len(b.ackRanges("ra")) == 1 })
	var ra *RetryAtError
	if !errors.As(RetryAt(time.Now()), &ra) {
		t.Fatal("RetryAt type")
	}
}
