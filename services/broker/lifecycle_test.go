package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// stored reads every message of subject from the broker's store.
func stored(t *testing.T, b *brokerHarness, subject string) []protocol.Message {
	t.Helper()
	var out []protocol.Message
	for seq := b.srv.inst().store.MinSequence(subject); seq <= b.srv.inst().store.MaxSequence(subject); seq++ {
		rec, err := b.srv.inst().store.Read(subject, seq)
		if err != nil {
			t.Fatalf("read %s/%d: %v", subject, seq, err)
		}
		m, err := protocol.DecodePayload(rec.Payload)
		rec.Release()
		if err != nil {
			t.Fatalf("decode %s/%d: %v", subject, seq, err)
		}
		out = append(out, m)
	}
	return out
}

func attr(m protocol.Message, key string) string {
	for _, a := range m.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// Messages an offline consumer leaves unacked go to the retry subject,
// except those out of retries (qmq_times+1 > qmq_maxRetryNum, 32 by
// default), which go to %DEAD_RETRY%<subject>%<group>.
func TestOfflineConsumerDeadLetters(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "subscriber.offline.timeout.ms=300")
	c := b.dial()
	k := newConsumer(c, "work", "g", "dead")
	k.pull(1, -1, false)
	fresh := msg("work", "fresh")
	limited := msg("work", "limited")
	limited.Attrs = append(limited.Attrs, protocol.Attr{Key: "qmq_maxRetryNum", Value: "1"})
	tired := msg("work", "tired")
	tired.Attrs = append(tired.Attrs, protocol.Attr{Key: "qmq_times", Value: "32"})
	again := msg("work", "again")
	again.Attrs = append(again.Attrs, protocol.Attr{Key: "qmq_times", Value: "3"}, protocol.Attr{Key: "qmq_maxRetryNum", Value: "5"})
	c.mustSend(fresh, limited, tired, again)
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("work") == 3 })
	if got := k.pull(10, 2000, true); len(got) != 4 {
		t.Fatalf("pulled %v", got)
	}
	const retry, dead = "%RETRY%work%g", "%DEAD_RETRY%work%g"
	testutil.Eventually(t, 10*time.Second, "the four messages moved", func() bool {
		return b.srv.inst().store.MaxSequence(retry)+b.srv.inst().store.MaxSequence(dead) == 2
	})
	got := map[string]string{}
	for _, s := range []string{retry, dead} {
		for _, pm := range stored(t, b, s) {
			if pm.Subject != s {
				t.Errorf("message %s stored in %s carries subject %s", pm.MessageID, s, pm.Subject)
			}
			got[pm.MessageID] = s + " times=" + attr(pm, "qmq_times")
		}
	}
	want := map[string]string{
		"fresh": retry + " times=2", "again": retry + " times=4",
		"limited": dead + " times=2", "tired": dead + " times=33",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	if n := counter(t, b.srv.inst().m.movedDead); n != 2 {
		t.Errorf("qmq_broker_moved_to_dead_letter_total = %v, want 2", n)
	}
	if !strings.Contains(b.logs.String(), "moved to the dead-letter subject") {
		t.Error("no log line for the dead letters")
	}
}

// A consumer silent for subscriber.forever.offline.timeout.ms gets a
// FOREVER_OFFLINE action: its unacked messages were moved to the retry
// subject first, then its pull log and progress are dropped (for good: a
// restart replays the action). A consumer that keeps heartbeating stays.
func TestForeverOfflineConsumerDropped(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "subscriber.offline.timeout.ms=200", "subscriber.forever.offline.timeout.ms=800")
	c := b.dial()
	gone := newConsumer(c, "fo", "g", "gone")
	alive := newConsumer(c, "fo", "g", "alive")
	gone.pull(1, -1, false)
	alive.pull(1, -1, false)
	sendN(t, c, "fo", 6)
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("fo") == 5 })
	if got := gone.pull(3, 2000, true); len(got) != 3 {
		t.Fatalf("gone pulled %v", got)
	}
	c.ack("fo", "g", "gone", 0, 0, false) // one acked, two left
	if got := alive.pull(3, 2000, false); len(got) != 3 {
		t.Fatalf("alive pulled %v", got)
	}
	known := func(id string) bool {
		var ok bool
		b.srv.inst().store.PullLog(func(t *pulllog.Table) { _, ok = t.Consumer("fo", "g", id) })
		return ok
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // alive heartbeats (ACK with begin -1) like a QMQ consumer, every 100 ms
		defer close(done)
		hc := b.dial()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			hc.ack("fo", "g", "alive", -1, -1, false)
		}
	}()
	testutil.Eventually(t, 10*time.Second, "gone dropped", func() bool { return !known("gone") })
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	if !known("alive") {
		t.Fatal("the heartbeating consumer was dropped")
	}
	if got := b.srv.inst().store.MaxSequence("%RETRY%fo%g"); got != 1 {
		t.Fatalf("retry subject holds %d messages, want gone's 2 unacked", got+1)
	}
	if n := counter(t, b.srv.inst().m.foreverOffline); n != 1 {
		t.Fatalf("qmq_broker_forever_offline_consumers_total = %v, want 1", n)
	}
	if !strings.Contains(b.logs.String(), "consumer offline for good") {
		t.Fatal("no log line for the dropped consumer")
	}
	b.srv.inst().subs.mu.Lock()
	_, tracked := b.srv.inst().subs.lastSeen[pulllog.ConsumerKey{Subject: "fo", Group: "g", ConsumerID: "gone"}]
	b.srv.inst().subs.mu.Unlock()
	if tracked {
		t.Fatal("the dropped consumer is still tracked")
	}

	b.restart()
	if known("gone") {
		t.Fatal("the dropped consumer is back after a restart: the FOREVER_OFFLINE action was not durable")
	}
	if !known("alive") {
		t.Fatal("the live consumer is gone after a restart")
	}
	// The group's shared cursor did not move back: a new consumer gets only what is left.
	k := newConsumer(b.dial(), "fo", "g", "new")
	if got := k.pull(10, 1000, false); len(got) != 0 {
		t.Fatalf("new consumer of the group got %v", got)
	}
}

func TestForeverTimeoutShorterThanOfflineRefused(t *testing.T) {
	m := startMeta(t)
	dir := t.TempDir()
	writeFile(t, dir+"/"+FileBroker, "meta.server.endpoint="+m.endpoint()+"\nsubscriber.offline.timeout.ms=60000\nsubscriber.forever.offline.timeout.ms=1000\n")
	_, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err == nil || !strings.Contains(err.Error(), "subscriber.forever.offline.timeout.ms") {
		t.Fatalf("got %v", err)
	}
}

// A lease health check shorter than a second would flap: refused at start
// with the key, the value and what to use instead.
func TestShortConsulCheckTTLRefused(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/"+FileBroker, "meta.server.endpoint=http://127.0.0.1:1/meta/address\nfailover.consul.check.ttl.ms=200\n")
	_, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err == nil || !strings.Contains(err.Error(), "failover.consul.check.ttl.ms=200") || !strings.Contains(err.Error(), "1000 or more") {
		t.Fatalf("got %v", err)
	}
	writeFile(t, dir+"/"+FileBroker, "meta.server.endpoint=http://127.0.0.1:1/meta/address\nfailover.consul.check.ttl.ms=0\n")
	if _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv}); err != nil {
		t.Fatalf("0 (session TTL only) refused: %v", err)
	}
}

// CONSUME_MANAGE code 3 (ours) moves a group to the first message stored at
// or after a time, over the wire and through the metaserver's ResetOffset
// (what `qmq tools ResetOffset --action=3 --timestamp=…` posts).
func TestConsumeManageTimestamp(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	c := b.dial()
	sendN(t, c, "hist", 5)
	time.Sleep(30 * time.Millisecond)
	split := time.Now()
	time.Sleep(30 * time.Millisecond)
	var second []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("late-%d", i)
		c.mustSend(msg("hist", id))
		second = append(second, id)
	}
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("hist") == 9 })
	k := newConsumer(c, "hist", "g", "c")
	if got := k.pull(100, -1, false); got != nil {
		t.Fatalf("new group got old messages %v", got)
	}

	f := c.call(protocol.CodeConsumeManage, protocol.AppendConsumeManageTimestamp(nil, "hist", "g", split.UnixMilli()))
	if f.Header.Code != protocol.CodeSuccess {
		t.Fatalf("CONSUME_MANAGE: %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
	res, ok, err := protocol.DecodeConsumeManageResult(f.Body)
	if err != nil || !ok || res.NextSequence != 5 || res.MessageTimestamp < split.UnixMilli() {
		t.Fatalf("result %+v %v %v; want next sequence 5 stored after %d", res, ok, err, split.UnixMilli())
	}
	if got := k.pull(100, -1, false); !slices.Equal(got, second) {
		t.Fatalf("after reset to %v got %v, want %v", split, got, second)
	}

	// Through the metaserver's management API: an RFC 3339 time before
	// everything (a form value, as `qmq tools ResetOffset --timestamp` sends it).
	adm, ctx := m.admin(), context.Background()
	var moved []admin.ResetGroup
	if _, err := adm.Do(ctx, admin.ActionResetOffset, url.Values{"subject": {"hist"}, "group": {"g"}, "code": {"3"},
		"timestamp": {split.Add(-time.Hour).UTC().Format(time.RFC3339)}}, &moved); err != nil {
		t.Fatal(err)
	}
	if len(moved) != 1 || moved[0].BrokerGroup != "g1" || moved[0].NextSequence != 0 {
		t.Fatalf("ResetOffset answer: %+v", moved)
	}
	if got := k.pull(100, -1, false); len(got) != 10 {
		t.Fatalf("after reset to an hour ago got %v", got)
	}
	// A time in the future: past the last message.
	future, err := adm.ResetOffset(ctx, admin.ResetSpec{Subject: "hist", Group: "g", Code: admin.ResetTimestamp, At: time.Now().Add(time.Hour)})
	if err != nil || len(future.Groups) != 1 || future.Groups[0].NextSequence != 10 || future.Groups[0].MessageTime != "" {
		t.Fatalf("ResetOffset to the future: %+v %v", future, err)
	}
	c.mustSend(msg("hist", "newest"))
	if got := k.pull(100, 2000, false); !slices.Equal(got, []string{"newest"}) {
		t.Fatalf("after reset to the future got %v", got)
	}
	// QMQ's actions still answer as QMQ does.
	if _, err := adm.ResetOffset(ctx, admin.ResetSpec{Subject: "hist", Group: "g", Code: admin.ResetEarliest}); err != nil {
		t.Fatalf("ResetOffset earliest: %v", err)
	}
	if got := k.pull(100, -1, false); len(got) != 11 {
		t.Fatalf("after reset to earliest got %d messages", len(got))
	}

	// Mistakes are explained.
	var refused *admin.Error
	if _, err := adm.ResetOffset(ctx, admin.ResetSpec{Subject: "hist", Group: "g", Code: admin.ResetTimestamp}); !errors.As(err, &refused) || !strings.Contains(err.Error(), "needs --timestamp") {
		t.Fatalf("no timestamp: %v", err)
	}
	if _, err := adm.Do(ctx, admin.ActionResetOffset, url.Values{"subject": {"hist"}, "group": {"g"}, "code": {"3"}, "timestamp": {"yesterday"}}, nil); !errors.As(err, &refused) || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad timestamp: %v", err)
	}
	short := protocol.AppendConsumeManageRequest(nil, &protocol.ConsumeManageRequest{Subject: "hist", ConsumerGroup: "g", Code: protocol.ConsumeFromTimestamp})
	if f := c.call(protocol.CodeConsumeManage, short); f.Header.Code != protocol.CodeParamError || !strings.Contains(protocol.DecodeErrorBody(f.Body), "needs an i64 timestamp") {
		t.Fatalf("code 3 without a timestamp: %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
}

// Unacked messages handed out again (the consumer lost the response, e.g.
// it restarted with new tags) are filtered again with the consumer's
// current tag filter; those it drops are acknowledged by the broker, so they
// neither block the consumer nor end up in the retry subject.
func TestRedeliveryRefiltersTags(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "subscriber.offline.timeout.ms=300")
	c := b.dial()
	k := newConsumer(c, "refilter", "g", "c1")
	k.pull(1, -1, false)
	c.mustSend(msg("refilter", "a"), msg("refilter", "b", "vip"), msg("refilter", "c"), msg("refilter", "d", "vip"), msg("refilter", "e"))
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("refilter") == 4 })
	if got := k.pull(10, -1, true); len(got) != 5 {
		t.Fatalf("first pull %v", got)
	}
	// The response is lost; the consumer comes back with a filter.
	k.last = -1
	k.tagType, k.tags = protocol.TagTypeOr, []string{"vip"}
	r := c.pull(k.request(10, -1))
	if !slices.Equal(ids(r), []string{"b"}) || r.FirstPullLogOffset != 1 {
		t.Fatalf("redelivery %v at %v, want [b] at 1", ids(r), r)
	}
	k.last = 1
	// c is next but filtered out, and b is not acked yet: acking c now would
	// jump over b, so nothing comes until b is acked (not even new messages).
	start := time.Now()
	if got := k.pull(10, 300, true); got != nil {
		t.Fatalf("got %v while b is unacked", got)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("long poll answered after %v", d)
	}
	c.ack("refilter", "g", "c1", 1, 1, false)
	r = c.pull(k.request(10, -1))
	if !slices.Equal(ids(r), []string{"d"}) || r.FirstPullLogOffset != 3 {
		t.Fatalf("second redelivery %v, want [d] at 3", ids(r))
	}
	k.last = 3
	c.ack("refilter", "g", "c1", 3, 3, false)
	if got := k.pull(10, -1, false); got != nil {
		t.Fatalf("got %v after the redelivery", got)
	}
	c.mustSend(msg("refilter", "f", "vip"))
	r = c.pull(k.request(10, 2000))
	if !slices.Equal(ids(r), []string{"f"}) || r.FirstPullLogOffset != 5 {
		t.Fatalf("new message %v, want [f] at 5", ids(r))
	}
	c.ack("refilter", "g", "c1", 5, 5, false)

	var prog pulllog.ConsumerProgress
	var skipped []pulllog.Run
	b.srv.inst().store.PullLog(func(t *pulllog.Table) {
		prog, _ = t.Consumer("refilter", "g", "c1")
		skipped = t.Skipped("refilter", "g", "c1")
	})
	if prog.PullSeq != 5 || prog.AckSeq != 5 || len(skipped) != 0 {
		t.Fatalf("progress %+v, skipped %v; want everything acked, nothing skipped", prog, skipped)
	}
	// The consumer goes silent: nothing of it is left to move.
	time.Sleep(time.Second)
	if got := b.srv.inst().store.MaxSequence("%RETRY%refilter%g"); got != -1 {
		t.Fatalf("%d filtered messages moved to the retry subject", got+1)
	}
}
