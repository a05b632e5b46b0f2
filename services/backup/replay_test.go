package backup

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
)

func payload(t testing.TB, subject, id string, created int64) []byte {
	t.Helper()
	wire, err := protocol.AppendMessage(nil, &protocol.Message{CreateTime: created, ExpireOrScheduleTime: created, Subject: subject, MessageID: id,
		Attrs: []protocol.Attr{{Key: "data", Value: "body of " + id}}})
	if err != nil {
		t.Fatal(err)
	}
	return wire[8:]
}

func TestSplitSubject(t *testing.T) {
	for _, c := range []struct {
		in, subject, group string
		kind               backup.Kind
	}{
		{"order.changed", "order.changed", "", backup.KindNormal},
		{"%RETRY%order.changed%billing", "order.changed", "billing", backup.KindRetry},
		{"%DEAD_RETRY%order.changed%billing", "order.changed", "billing", backup.KindDead},
		{"%RETRY%nogroup", "%RETRY%nogroup", "", backup.KindNormal}, // malformed: kept as is
		{"%RETRY%s%", "%RETRY%s%", "", backup.KindNormal},
	} {
		s, g, k := splitSubject(c.in)
		if s != c.subject || g != c.group || k != c.kind {
			t.Errorf("splitSubject(%q) = %q, %q, %d; want %q, %q, %d", c.in, s, g, k, c.subject, c.group, c.kind)
		}
	}
}

// TestReplayMessagesAcrossSegments writes a real message log with small
// segments (so it rolls, leaving EOF fillers), reads it back in answers of
// a few records as a slave serves them, and checks every message is
// replayed once with its kind, group, sequence, id and content.
func TestReplayMessagesAcrossSegments(t *testing.T) {
	const segSize = 4096
	l, err := messagelog.Open(messagelog.Config{Dir: t.TempDir(), SegmentSize: segSize}, messagelog.Start{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	created := time.Now().Add(-time.Hour).UnixMilli()
	var msgs []messagelog.Message
	subjects := []string{"s1", "%RETRY%s1%g1", "%DEAD_RETRY%s1%g1"}
	for i := range 90 {
		subj := subjects[i%3]
		msgs = append(msgs, messagelog.Message{Subject: subj, Payload: payload(t, subj, fmt.Sprintf("id-%d", i), created+int64(i))})
	}
	for _, m := range msgs {
		if _, err := l.Append(context.Background(), []messagelog.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.Segments()) < 2 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	g := geometry{base: l.MinOffset(), size: segSize}
	var got []backup.Message
	off := l.MinOffset()
	for off < l.WrotePosition() {
		v, n, err := l.ReadRaw(off, 700) // a few records per answer
		if err != nil {
			t.Fatal(err)
		}
		b, next, err := replayMessages(v.Bytes()[:n], off, g, "bg1", false)
		v.Release()
		if err != nil {
			t.Fatal(err)
		}
		if next <= off {
			t.Fatalf("no progress at %d", off)
		}
		got = append(got, b.msgs...)
		off = next
	}
	if len(got) != len(msgs) {
		t.Fatalf("replayed %d messages, want %d", len(got), len(msgs))
	}
	seqs := map[string]int64{}
	for i, m := range got {
		wantKind := []backup.Kind{backup.KindNormal, backup.KindRetry, backup.KindDead}[i%3]
		if m.Subject != "s1" || m.Kind != wantKind || m.MessageID != fmt.Sprintf("id-%d", i) || m.BrokerGroup != "bg1" ||
			!m.CreateTime.Equal(time.UnixMilli(created+int64(i))) {
			t.Fatalf("message %d: %+v", i, m)
		}
		if (wantKind != backup.KindNormal) != (m.ConsumerGroup == "g1") {
			t.Fatalf("message %d: consumer group %q", i, m.ConsumerGroup)
		}
		if (wantKind == backup.KindDead) != (len(m.Content) > 0) {
			t.Fatalf("message %d (kind %d): content kept=%v; only dead letters keep theirs by default", i, m.Kind, len(m.Content) > 0)
		}
		key := subjects[i%3]
		if m.Sequence != seqs[key] {
			t.Fatalf("message %d: sequence %d, want %d in %s", i, m.Sequence, seqs[key], key)
		}
		seqs[key]++
	}
	if d := got[2]; string(d.Content) != string(msgs[2].Payload) {
		t.Fatal("a dead letter's content differs from its payload")
	}
}

func encodeActions(t testing.TB, as ...actionlog.Action) []byte {
	t.Helper()
	var b []byte
	for _, a := range as {
		var err error
		if b, err = actionlog.AppendEncoded(b, a); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestReplayActionsStopsAtFiller(t *testing.T) {
	a := actionlog.Action{Type: actionlog.Pull, Subject: "s", Group: "g", ConsumerID: "c", Timestamp: 1, FirstPullSeq: 0, LastPullSeq: 1, FirstMsgSeq: 5, LastMsgSeq: 6}
	b := encodeActions(t, a, a)
	size := int64(len(b) + 64)
	data := append(b, 0xC3, 0xB2, 0xA1, 0x00, byte(actionlog.RecordEOF)) // the filler's magic and type
	got, next, err := replayActions(data, 0, geometry{0, size})
	if err != nil || len(got) != 2 || next != size {
		t.Fatalf("got %d actions, next %d, err %v; want 2, %d (the next segment)", len(got), next, err, size)
	}
	// Half a record: nothing consumed past the whole ones.
	got, next, err = replayActions(b[:len(b)-3], 0, geometry{0, 1 << 20})
	if err != nil || len(got) != 1 || next != int64(len(b)/2) {
		t.Fatalf("cut answer: %d actions, next %d, err %v", len(got), next, err)
	}
	if _, _, err := replayActions([]byte("garbage garbage garbage"), 0, geometry{0, 1 << 20}); err == nil {
		t.Fatal("garbage decoded without error")
	}
}

func pull(consumer string, firstPull, lastPull, firstMsg int64, ts int64) actionlog.Action {
	return actionlog.Action{Type: actionlog.Pull, Subject: "s", Group: "g", ConsumerID: consumer, Timestamp: ts,
		FirstPullSeq: firstPull, LastPullSeq: lastPull, FirstMsgSeq: firstMsg, LastMsgSeq: firstMsg + lastPull - firstPull}
}

func ack(consumer string, first, last, ts int64) actionlog.Action {
	return actionlog.Action{Type: actionlog.RangeAck, Subject: "s", Group: "g", ConsumerID: consumer, Timestamp: ts, FirstPullSeq: first, LastPullSeq: last}
}

func seqsOf(recs []backup.Record, act backup.Action) []int64 {
	var out []int64
	for _, r := range recs {
		if r.Action == act {
			out = append(out, r.Sequence)
		}
	}
	return out
}

func TestPullMapResolvesAcks(t *testing.T) {
	m := newPullMap(time.Hour)
	var recs []backup.Record
	// Two consumers share the group's messages: c1 got 10..12 and 20..21,
	// c2 got 13..14; each counts its own pull sequences from 0.
	recs, _ = m.apply(pull("c1", 0, 2, 10, 1000), "bg", recs)
	recs, _ = m.apply(pull("c2", 0, 1, 13, 1001), "bg", recs)
	recs, _ = m.apply(pull("c1", 3, 4, 20, 1002), "bg", recs)
	if got := fmt.Sprint(seqsOf(recs, backup.ActionPull)); got != "[10 11 12 13 14 20 21]" {
		t.Fatalf("pulled %s", got)
	}
	recs = recs[:0]
	var u int64
	recs, u = m.apply(ack("c1", 0, 3, 5), "bg", recs) // across two ranges
	if got := fmt.Sprint(seqsOf(recs, backup.ActionAck)); got != "[10 11 12 20]" || u != 0 {
		t.Fatalf("c1's ack resolved to %s (unresolved %d)", got, u)
	}
	recs, _ = m.apply(ack("c2", 0, 1, 6), "bg", recs[:0])
	if got := fmt.Sprint(seqsOf(recs, backup.ActionAck)); got != "[13 14]" {
		t.Fatalf("c2's ack resolved to %s", got)
	}
	if recs[0].ConsumerID != "c2" || recs[0].ConsumerGroup != "g" || recs[0].BrokerGroup != "bg" || recs[0].Timestamp.UnixMilli() != 6 {
		t.Fatalf("record %+v", recs[0])
	}
	if m.pending() != 1 { // c1's pull 4 (message 21) waits
		t.Fatalf("pending ranges %d, want 1", m.pending())
	}
	recs, _ = m.apply(ack("c1", 4, 4, 7), "bg", recs[:0])
	if got := fmt.Sprint(seqsOf(recs, backup.ActionAck)); got != "[21]" || m.pending() != 0 {
		t.Fatalf("last ack: %s, pending %d", got, m.pending())
	}
	// An ack whose pull the backup never saw is counted, not guessed.
	if recs, u = m.apply(ack("c9", 0, 4, 8), "bg", recs[:0]); len(recs) != 0 || u != 5 {
		t.Fatalf("unknown consumer's ack: %d records, %d unresolved", len(recs), u)
	}
}

func TestPullMapBroadcastIsIdentity(t *testing.T) {
	m := newPullMap(time.Hour)
	p := pull("client-1", 7, 9, 7, 1)
	p.Broadcast, p.Group = true, "client-1"
	recs, _ := m.apply(p, "bg", nil)
	a := ack("client-1", 7, 8, 2)
	a.Group = "client-1"
	recs, _ = m.apply(a, "bg", recs)
	if got := fmt.Sprint(seqsOf(recs, backup.ActionAck)); got != "[7 8]" || m.pending() != 0 {
		t.Fatalf("broadcast ack resolved to %s, pending %d", got, m.pending())
	}
}

func TestPullMapRollbackAndReplay(t *testing.T) {
	m := newPullMap(time.Hour)
	m.apply(pull("c1", 0, 2, 10, 1), "bg", nil)
	saved := m.save()
	m.begin()
	m.apply(ack("c1", 0, 2, 2), "bg", nil)
	m.apply(pull("c2", 0, 0, 30, 3), "bg", nil)
	m.rollback() // the write failed: the batch will be replayed
	recs, u := m.apply(ack("c1", 0, 2, 2), "bg", nil)
	if got := fmt.Sprint(seqsOf(recs, backup.ActionAck)); got != "[10 11 12]" || u != 0 {
		t.Fatalf("after rollback the ack resolved to %s (unresolved %d)", got, u)
	}
	if _, ok := m.consumers[consumerKey{"s", "g", "c2"}]; ok {
		t.Fatal("rollback kept a consumer added in the batch")
	}
	// A restart from a checkpoint: the map as saved, the same pull replayed.
	r := newPullMap(time.Hour)
	r.load(saved)
	r.apply(pull("c1", 0, 2, 10, 1), "bg", nil) // replayed: replaces, not doubles
	if r.pending() != 1 {
		t.Fatalf("replayed pull doubled a range: %d", r.pending())
	}
}

func TestPullMapExpires(t *testing.T) {
	m := newPullMap(time.Minute)
	m.apply(pull("c1", 0, 0, 1, 0), "bg", nil)
	m.apply(pull("c2", 0, 0, 2, time.Hour.Milliseconds()), "bg", nil)
	m.expire()
	if m.pending() != 1 || len(m.consumers) != 1 {
		t.Fatalf("after expiry: %d ranges, %d consumers; want c2's only", m.pending(), len(m.consumers))
	}
	m.apply(actionlog.Action{Type: actionlog.ForeverOffline, Subject: "s", Group: "g", ConsumerID: "c2", Timestamp: time.Hour.Milliseconds()}, "bg", nil)
	if len(m.consumers) != 0 {
		t.Fatal("FOREVER_OFFLINE kept the consumer")
	}
}

func FuzzReplay(f *testing.F) {
	f.Add(encodeActions(f, pull("c", 0, 1, 0, 1)), int64(0), int64(4096))
	f.Add([]byte{0xA1, 0xB2, 0xC3, 0x02, 1, 0, 0, 0, 0, 0, 0, 0, 0}, int64(0), int64(4096))
	f.Fuzz(func(t *testing.T, data []byte, off, size int64) {
		if size <= 0 || size > 1<<30 || off < 0 || off > 1<<40 {
			return
		}
		g := geometry{0, size}
		if _, next, err := replayMessages(data, off, g, "bg", true); err == nil && (next < off || next > g.segmentEnd(off)) {
			t.Fatalf("message replay moved to %d from %d", next, off)
		}
		if _, next, err := replayActions(data, off, g); err == nil && (next < off || next > g.segmentEnd(off)) {
			t.Fatalf("action replay moved to %d from %d", next, off)
		}
		_, _, _ = payloadHead(data)
	})
}
