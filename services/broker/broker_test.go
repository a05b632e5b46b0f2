package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// consumer simulates a QMQ consumer: it reports the last pull offset it
// received and acks what it got.
type consumer struct {
	c              *conn
	subject, group string
	id             string
	broadcast      bool
	last           int64 // last pull offset received
	tagType        int16
	tags           []string
}

func newConsumer(c *conn, subject, group, id string) *consumer {
	return &consumer{c: c, subject: subject, group: group, id: id, last: -1}
}

func (k *consumer) request(n int32, timeout int64) protocol.PullRequest {
	r := protocol.PullRequest{Subject: k.subject, ConsumerGroup: k.group, ConsumerID: k.id, RequestNum: n, Offset: -1,
		PullOffsetBegin: k.last, PullOffsetLast: k.last, TimeoutMillis: timeout, Broadcast: k.broadcast}
	if len(k.tags) > 0 {
		r.Filters = []protocol.PullFilter{{Type: protocol.PullFilterTag, TagType: k.tagType, Tags: k.tags}}
	}
	return r
}

// pull pulls and acks what it got (unless noAck).
func (k *consumer) pull(n int32, timeout int64, noAck bool) []string {
	r := k.c.pull(k.request(n, timeout))
	if r == nil {
		return nil
	}
	first := r.FirstPullLogOffset
	last := first + int64(len(r.Messages)) - 1
	k.last = last
	if !noAck {
		k.c.ack(k.subject, k.group, k.id, first, last, k.broadcast)
	}
	return ids(r)
}

func sendN(t *testing.T, c *conn, subject string, n int) []string {
	t.Helper()
	var want []string
	for i := 0; i < n; i += 50 {
		var batch []protocol.Message
		for j := i; j < min(n, i+50); j++ {
			id := fmt.Sprintf("%s-%04d", subject, j)
			batch = append(batch, msg(subject, id))
			want = append(want, id)
		}
		c.mustSend(batch...)
	}
	return want
}

func TestSendPullAckThreeConsumers(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	const subject, group, n = "order.created", "billing", 500
	var consumers []*consumer
	for i := 0; i < 3; i++ {
		k := newConsumer(b.dial(), subject, group, fmt.Sprintf("c%d", i))
		if got := k.pull(10, -1, false); got != nil {
			t.Fatalf("a new group got %v before anything was sent", got)
		}
		consumers = append(consumers, k)
	}
	want := sendN(t, b.dial(), subject, n)

	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, k := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				got := k.pull(7, 200, false)
				mu.Lock()
				for _, id := range got {
					seen[id]++
				}
				total := len(seen)
				mu.Unlock()
				if total >= n {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("got %d distinct messages, want %d", len(seen), n)
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("message %s delivered %d times", id, seen[id])
		}
	}
	for _, k := range consumers {
		if got := k.pull(10, -1, false); got != nil {
			t.Errorf("%s got %v after everything was consumed", k.id, got)
		}
	}
}

func TestSendRejections(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "max.message.size=2048")
	c := b.dial()
	big := msg("s", "big")
	big.Attrs = append(big.Attrs, protocol.Attr{Key: "x", Value: strings.Repeat("x", 4000)})
	rs := c.send(msg("s", "ok1"), msg("", "empty"), msg("bad\nsubject", "ctl"), msg(strings.Repeat("a", 101), "long"), big, msg("s", "ok2"))
	codes := map[string]int32{}
	for _, r := range rs {
		codes[r.MessageID] = r.Code
	}
	want := map[string]int32{"empty": protocol.SendBlock, "ctl": protocol.SendBlock, "long": protocol.SendBlock, "big": protocol.SendBlock}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("failures %v, want %v (%+v)", codes, want, rs)
	}
	if got := b.srv.inst().store.MaxSequence("s"); got != 1 {
		testutil.Eventually(t, 5*time.Second, "two messages stored", func() bool { return b.srv.inst().store.MaxSequence("s") == 1 })
	}
}

// TestIllegalSubjectsBlocked: a subject that is not a legal name is
// answered BLOCK (final: producers do not retry it) with a remark naming
// the character and its position, nothing of it is stored, and the broker
// goes on serving legal names — dots, dashes, underscores, digits, the
// longest name, and retry subjects built from legal names.
func TestIllegalSubjectsBlocked(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	c := b.dial()
	bad := map[string]string{
		" ":                    "a space (U+0020) at position 1",
		"*":                    "'*' (U+002A) at position 1",
		"order created":        "a space (U+0020) at position 6",
		"a;drop":               "';' (U+003B) at position 2",
		"a'b":                  `'\'' (U+0027) at position 2`,
		"a/b":                  "'/' (U+002F) at position 2",
		"%x":                   "'%' (U+0025) at position 1",
		"%RETRY%order":         "1 prefixes but 1",
		"%RETRY%or der%g":      "a space (U+0020) at position 10",
		"%DEAD_RETRY%order%g;": "';' (U+003B) at position 20",
		"订单":                   "'订' (U+8BA2) at position 1",
	}
	var msgs []protocol.Message
	for s := range bad {
		msgs = append(msgs, msg(s, "bad "+s))
	}
	longest := strings.Repeat("z", 100)
	good := []string{"order.created-v2_0", "0", longest, protocol.RetrySubject("order.created-v2_0", "group.1"), protocol.DeadRetrySubject(longest, strings.Repeat("g", 100))}
	for _, s := range good {
		msgs = append(msgs, msg(s, "good "+s))
	}
	rs := c.send(msgs...)
	if len(rs) != len(bad) {
		t.Errorf("%d failures, want %d (the illegal names): %+v", len(rs), len(bad), rs)
	}
	for _, r := range rs {
		s, isBad := strings.CutPrefix(r.MessageID, "bad ")
		if !isBad {
			t.Errorf("legal subject refused: %+v", r)
			continue
		}
		if r.Code != protocol.SendBlock || !strings.Contains(r.Remark, bad[s]) || !strings.Contains(r.Remark, "A-Z a-z, digits 0-9, '.', '_' and '-'") {
			t.Errorf("subject %q: code %s remark %q; want BLOCK naming %s and the alphabet", s, protocol.SendCodeName(r.Code), r.Remark, bad[s])
		}
	}
	for _, s := range good {
		testutil.Eventually(t, 5*time.Second, "one message of "+s+" stored", func() bool { return b.srv.inst().store.MaxSequence(s) == 0 })
	}
	// Dispatched in order after the batch: nothing of the illegal ones.
	for s := range bad {
		if seq := b.srv.inst().store.MaxSequence(s); seq >= 0 {
			t.Errorf("illegal subject %q was stored (max sequence %d)", s, seq)
		}
	}
	// The broker keeps serving on the same connection.
	c.mustSend(msg("order.created-v2_0", "after"))

	// PULL, ACK and CONSUME_MANAGE refuse illegal subjects and groups, and
	// accept a retry subject and a broadcast consumer's client id.
	for _, r := range []protocol.PullRequest{
		{Subject: "a b", ConsumerGroup: "g", ConsumerID: "c1"},
		{Subject: "order.created-v2_0", ConsumerGroup: "g*", ConsumerID: "c1"},
		{Subject: "order.created-v2_0", ConsumerGroup: "%RETRY%x", ConsumerID: "c1"},
	} {
		r.RequestNum, r.TimeoutMillis = 10, -1
		f := c.call(protocol.CodePullMessage, protocol.AppendPullRequest(nil, &r, protocol.CurrentVersion))
		if f.Header.Code != protocol.CodeParamError || !strings.Contains(protocol.DecodeErrorBody(f.Body), "illegal") {
			t.Errorf("pull %q/%q: %s %q, want PARAM_ERROR naming the illegal name", r.Subject, r.ConsumerGroup, protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
		}
	}
	c.pull(protocol.PullRequest{Subject: protocol.RetrySubject("order.created-v2_0", "g"), ConsumerGroup: "g", ConsumerID: "c1"})
	c.pull(protocol.PullRequest{Subject: "order.created-v2_0", ConsumerID: "host@@123.ab", Broadcast: true})
	f := c.call(protocol.CodeAckRequest, protocol.AppendAckRequest(nil, &protocol.AckRequest{Subject: "a b", ConsumerGroup: "g", ConsumerID: "c1", PullOffsetBegin: 0, PullOffsetLast: 0}, protocol.CurrentVersion))
	if f.Header.Code != protocol.CodeParamError {
		t.Errorf("ack of an illegal subject: %s, want PARAM_ERROR", protocol.CodeName(f.Header.Code, true))
	}
	f = c.call(protocol.CodeConsumeManage, protocol.AppendConsumeManageRequest(nil, &protocol.ConsumeManageRequest{Subject: "order.created-v2_0", ConsumerGroup: "g;", Code: protocol.ConsumeFromEarliest}))
	if f.Header.Code != protocol.CodeParamError {
		t.Errorf("reset of an illegal group: %s, want PARAM_ERROR", protocol.CodeName(f.Header.Code, true))
	}
}

func TestBroadcastGetsAll(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	const subject = "news"
	var ks []*consumer
	for i := 0; i < 2; i++ {
		k := newConsumer(b.dial(), subject, fmt.Sprintf("host%d", i), fmt.Sprintf("host%d", i))
		k.broadcast = true
		k.pull(10, -1, false)
		ks = append(ks, k)
	}
	want := sendN(t, b.dial(), subject, 120)
	for _, k := range ks {
		var got []string
		for len(got) < len(want) {
			r := k.pull(50, 2000, false)
			if r == nil {
				t.Fatalf("%s: nothing more after %d", k.id, len(got))
			}
			got = append(got, r...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s got %d messages, not the %d sent in order", k.id, len(got), len(want))
		}
	}
}

func TestTagFilter(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	const subject = "tagged"
	or := newConsumer(b.dial(), subject, "or", "c-or")
	or.tagType, or.tags = protocol.TagTypeOr, []string{"vip", "cn"}
	and := newConsumer(b.dial(), subject, "and", "c-and")
	and.tagType, and.tags = protocol.TagTypeAnd, []string{"vip", "cn"}
	all := newConsumer(b.dial(), subject, "all", "c-all")
	for _, k := range []*consumer{or, and, all} {
		k.pull(10, -1, false)
	}
	b.dial().mustSend(msg(subject, "none"), msg(subject, "vip", "vip"), msg(subject, "both", "vip", "cn"), msg(subject, "us", "us"), msg(subject, "cn", "cn", "x"))
	collect := func(k *consumer) []string {
		var got []string
		for {
			r := k.pull(2, 300, false)
			if r == nil {
				return got
			}
			got = append(got, r...)
		}
	}
	if got := collect(or); !slices.Equal(got, []string{"vip", "both", "cn"}) {
		t.Errorf("OR got %v", got)
	}
	if got := collect(and); !slices.Equal(got, []string{"both"}) {
		t.Errorf("AND got %v", got)
	}
	if got := collect(all); len(got) != 5 {
		t.Errorf("no filter got %v", got)
	}
	// Filtered messages leave no pull-log entries: AND's consumer pulled 1.
	if and.last != 0 {
		t.Errorf("AND consumer's last pull offset %d, want 0", and.last)
	}
}

func TestLongPollWakesOnSend(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	k := newConsumer(b.dial(), "lp", "g", "c")
	k.pull(1, -1, false)
	done := make(chan []string, 1)
	start := time.Now()
	go func() { done <- k.pull(10, 10000, false) }()
	time.Sleep(300 * time.Millisecond)
	b.dial().mustSend(msg("lp", "wake"))
	select {
	case got := <-done:
		if !slices.Equal(got, []string{"wake"}) {
			t.Fatalf("got %v", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("long poll answered after %v", d)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("long poll did not wake up")
	}
	// A long poll with nothing to deliver times out with NO_MESSAGE.
	start = time.Now()
	if got := k.pull(10, 300, false); got != nil || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("empty long poll: %v after %v", got, time.Since(start))
	}
}

func TestLostAckRedelivery(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	c := b.dial()
	k := newConsumer(c, "lost", "g", "c1")
	k.pull(1, -1, false)
	c.mustSend(msg("lost", "a"), msg("lost", "b"), msg("lost", "c"))
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("lost") == 2 })
	first := c.pull(k.request(2, -1))
	if !slices.Equal(ids(first), []string{"a", "b"}) || first.FirstPullLogOffset != 0 {
		t.Fatalf("first pull %v at %d", ids(first), first.FirstPullLogOffset)
	}
	// The response was "lost": the consumer still reports -1.
	again := c.pull(k.request(10, -1))
	if !slices.Equal(ids(again), []string{"a", "b"}) || again.FirstPullLogOffset != 0 {
		t.Fatalf("redelivery %v at %d", ids(again), again.FirstPullLogOffset)
	}
	k.last = 1
	k.c.ack("lost", "g", "c1", 0, 1, false)
	next := c.pull(k.request(10, -1))
	if !slices.Equal(ids(next), []string{"c"}) || next.FirstPullLogOffset != 2 {
		t.Fatalf("next pull %v at %d", ids(next), next.FirstPullLogOffset)
	}
	// Another consumer of the group does not get a or b.
	other := newConsumer(c, "lost", "g", "c2")
	if got := other.pull(10, -1, false); got != nil {
		t.Fatalf("c2 got %v", got)
	}
}

func TestRestartResumes(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	k := newConsumer(b.dial(), "durable", "g", "c1")
	k.pull(1, -1, false)
	want := sendN(t, b.dial(), "durable", 100)
	var got []string
	for len(got) < 40 {
		got = append(got, k.pull(10, 1000, false)...)
	}
	// Pulled but not acked before the restart: must come back after it.
	unacked := k.pull(10, 1000, true)
	if len(unacked) == 0 {
		t.Fatal("no unacked pull")
	}
	k.last -= int64(len(unacked)) // as if the response were lost in the restart
	b.restart()
	if g := b.srv.Group(); g != "g1" {
		t.Fatalf("group after restart %q", g)
	}
	k.c = b.dial()
	for len(got) < len(want) {
		r := k.pull(25, 2000, false)
		if r == nil {
			t.Fatalf("nothing more after %d of %d", len(got), len(want))
		}
		got = append(got, r...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after restart got %d messages (%v…), want the %d sent in order", len(got), got[:min(5, len(got))], len(want))
	}
	// A new consumer of the group does not start over.
	if g := newConsumer(k.c, "durable", "g", "c9").pull(10, -1, false); g != nil {
		t.Fatalf("new consumer of the group got %v", g)
	}
}

func TestOfflineConsumerMessagesMoveToRetry(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "subscriber.offline.timeout.ms=400")
	c := b.dial()
	dead := newConsumer(c, "work", "g", "dead")
	dead.pull(1, -1, false)
	sendN(t, c, "work", 5)
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("work") == 4 })
	got := dead.pull(10, 2000, true)
	if len(got) != 5 {
		t.Fatalf("pulled %v", got)
	}
	// "dead" goes silent; the group's retry subject gets its messages.
	retry := newConsumer(c, "%RETRY%work%g", "g", "alive")
	var moved []*protocol.PulledMessage
	deadline := time.Now().Add(10 * time.Second)
	for len(moved) < 5 && time.Now().Before(deadline) {
		r := c.pull(retry.request(10, 500))
		if r == nil {
			continue
		}
		for i := range r.Messages {
			moved = append(moved, &r.Messages[i])
		}
		retry.last = r.FirstPullLogOffset + int64(len(r.Messages)) - 1
		c.ack(retry.subject, "g", "alive", r.FirstPullLogOffset, retry.last, false)
	}
	if len(moved) != 5 {
		t.Fatalf("retry subject delivered %d messages, want 5", len(moved))
	}
	for i, pm := range moved {
		times := ""
		for _, a := range pm.Message.Attrs {
			if a.Key == "qmq_times" {
				times = a.Value
			}
		}
		if pm.Message.MessageID != got[i] || pm.Message.Subject != "%RETRY%work%g" || times != "2" {
			t.Errorf("moved message %d: id %s subject %s qmq_times %q", i, pm.Message.MessageID, pm.Message.Subject, times)
		}
	}
	// The dead consumer's messages are acked: it would get nothing again.
	if r := c.pull(dead.request(10, -1)); r != nil {
		t.Fatalf("dead consumer got %v after the move", ids(r))
	}
}

func TestConsumeManageEarliest(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	c := b.dial()
	sendN(t, c, "hist", 10)
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("hist") == 9 })
	k := newConsumer(c, "hist", "g", "c")
	if got := k.pull(100, -1, false); got != nil {
		t.Fatalf("new group got old messages %v", got)
	}
	f := c.call(protocol.CodeConsumeManage, protocol.AppendConsumeManageRequest(nil, &protocol.ConsumeManageRequest{Subject: "hist", ConsumerGroup: "g", Code: protocol.ConsumeFromEarliest}))
	if f.Header.Code != protocol.CodeSuccess {
		t.Fatalf("CONSUME_MANAGE: %s", protocol.CodeName(f.Header.Code, true))
	}
	if got := k.pull(100, -1, false); len(got) != 10 {
		t.Fatalf("after reset to earliest got %v", got)
	}
}

func TestUnregisteredBrokerExplains(t *testing.T) {
	m := startMeta(t)
	b := startBroker2(t, m)
	testutil.Eventually(t, 5*time.Second, "the metaserver's explanation in the log", func() bool {
		return strings.Contains(b.logs.String(), "cannot find broker meta")
	})
	if b.srv.Online() {
		t.Fatal("unregistered broker is online")
	}
	rs := b.dial().send(msg("s", "m1"))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerReadOnly {
		t.Fatalf("send before online: %+v", rs)
	}
}

// startBroker2 starts a broker whose hostname is not registered.
func startBroker2(t *testing.T, m *metaHarness) *brokerHarness {
	t.Helper()
	b := &brokerHarness{t: t, meta: m, dir: t.TempDir(), hostname: "unregistered-host"}
	b.root = b.dir + "/store"
	b.base = "meta.server.endpoint=" + m.endpoint() + "\nbroker.port=0\nsync.port=0\nbroker.http.port=0\nmeta.retry.interval.ms=100\n"
	b.start(false, false)
	t.Cleanup(b.stop)
	return b
}

func TestRetrySubjectHeldForRetryDelay(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "message.retry.delay.seconds=1")
	c := b.dial()
	const subject = "%RETRY%pay%g"
	sent := time.Now()
	c.mustSend(msg(subject, "r1"))
	k := newConsumer(c, subject, "g", "c")
	got := k.pull(10, 5000, false)
	if !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("got %v", got)
	}
	if d := time.Since(sent); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("retry message delivered %v after it was sent, want about 1s", d)
	}
}
