package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
)

// Run runs the suite; newStore returns an empty store, closed by the test's
// cleanup unless a subtest closes it.
func Run(t *testing.T, newStore func(t *testing.T) backup.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s backup.Store)
	}{
		{"PagesNewestFirst", testPages},
		{"RePutIsIdempotent", testRePut},
		{"TimeBounds", testTimeBounds},
		{"MessageID", testMessageID},
		{"DeadLetters", testDeadLetters},
		{"Records", testRecords},
		{"RetryRecords", testRetryRecords},
		{"Detail", testDetail},
		{"DetailSameSequence", testDetailSameSequence},
		{"RetryDetail", testRetryDetail},
		{"RetryCopies", testRetryCopies},
		{"LongNames", testLongNames},
		{"BadQueries", testBadQueries},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

// base is a recent whole second, inside the default 30-day range.
func base() time.Time { return time.Now().Add(-time.Hour).Truncate(time.Second) }

func msg(subject, id, group string, seq int64, at time.Time) backup.Message {
	return backup.Message{Subject: subject, MessageID: id, BrokerGroup: group, Sequence: seq, CreateTime: at}
}

// series is n messages of subject in group, one every step from t0 on.
func series(subject, group string, n int, t0 time.Time, step time.Duration) []backup.Message {
	out := make([]backup.Message, n)
	for i := range out {
		out[i] = msg(subject, fmt.Sprintf("%s.%s.%03d", subject, group, i), group, int64(i), t0.Add(time.Duration(i)*step))
	}
	return out
}

func put(t *testing.T, s backup.Store, msgs ...backup.Message) {
	t.Helper()
	if err := s.PutMessages(ctx, msgs); err != nil {
		t.Fatalf("PutMessages: %v", err)
	}
}

// all pages through q and returns every message.
func all(t *testing.T, find func(context.Context, backup.MessageQuery) (backup.MessagePage, error), q backup.MessageQuery) []backup.Message {
	t.Helper()
	var out []backup.Message
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages: Next does not advance")
		}
		p, err := find(ctx, q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		if len(p.Messages) > q.Len {
			t.Fatalf("page of %d messages for len %d", len(p.Messages), q.Len)
		}
		out = append(out, p.Messages...)
		if p.Next == "" {
			return out
		}
		q.Start = p.Next
	}
}

func ids(ms []backup.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MessageID
	}
	return out
}

func testPages(t *testing.T, s backup.Store) {
	t0 := base()
	msgs := series("order.changed", "bg1", 25, t0, time.Second)
	put(t, s, msgs...)
	put(t, s, series("other.subject", "bg1", 3, t0, time.Second)...)
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}

	p, err := s.FindMessages(ctx, backup.MessageQuery{Subject: "order.changed", Len: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 10 || p.Next == "" {
		t.Fatalf("first page: %d messages, next %q; want 10 and a next", len(p.Messages), p.Next)
	}
	m := p.Messages[0]
	want := msgs[24]
	if m.MessageID != want.MessageID || m.Subject != "order.changed" || m.BrokerGroup != "bg1" || m.Sequence != 24 ||
		!m.CreateTime.Equal(want.CreateTime) || m.Kind != backup.KindNormal {
		t.Fatalf("newest message %+v, want %+v", m, want)
	}
	got := all(t, s.FindMessages, backup.MessageQuery{Subject: "order.changed", Len: 10})
	if len(got) != 25 {
		t.Fatalf("paged through %d messages, want 25: %v", len(got), ids(got))
	}
	for i := range got {
		if got[i].MessageID != msgs[24-i].MessageID {
			t.Fatalf("message %d is %s, want %s (newest first)", i, got[i].MessageID, msgs[24-i].MessageID)
		}
	}
	// Exactly a page: no Next pointing at nothing.
	p, err = s.FindMessages(ctx, backup.MessageQuery{Subject: "other.subject", Len: 3})
	if err != nil || len(p.Messages) != 3 || p.Next != "" {
		t.Fatalf("a full last page: %d messages, next %q, %v; want 3, no next", len(p.Messages), p.Next, err)
	}
}

func testRePut(t *testing.T, s backup.Store) {
	msgs := series("order.changed", "bg1", 5, base(), time.Second)
	put(t, s, msgs...)
	put(t, s, msgs...)
	put(t, s, msgs[2:]...)
	got := all(t, s.FindMessages, backup.MessageQuery{Subject: "order.changed", Len: 100})
	if len(got) != 5 {
		t.Fatalf("after re-puts: %d messages, want 5: %v", len(got), ids(got))
	}
}

func testTimeBounds(t *testing.T, s backup.Store) {
	t0 := base()
	// Several messages inside one second, to check millisecond bounds.
	msgs := series("order.changed", "bg1", 20, t0, 250*time.Millisecond)
	put(t, s, msgs...)
	q := backup.MessageQuery{Subject: "order.changed", Len: 3, CreateTimeBegin: msgs[5].CreateTime, CreateTimeEnd: msgs[14].CreateTime}
	got := all(t, s.FindMessages, q)
	// Row keys hold seconds (QMQ's yyMMddHHmmss): newest first is to the
	// second; within a second the order is the ids' MD5s'.
	seen := map[string]bool{}
	for i, m := range got {
		seen[m.MessageID] = true
		if i > 0 && m.CreateTime.Truncate(time.Second).After(got[i-1].CreateTime) {
			t.Fatalf("message %d (%s) is a second newer than the one before it", i, m.CreateTime)
		}
	}
	for _, m := range msgs[5:15] {
		if !seen[m.MessageID] {
			t.Fatalf("messages 5..14 by time: got %v, missing %s", ids(got), m.MessageID)
		}
	}
	if len(got) != 10 {
		t.Fatalf("messages 5..14 by time: got %v", ids(got))
	}
	// A window with nothing in it.
	q = backup.MessageQuery{Subject: "order.changed", Len: 10, CreateTimeBegin: t0.Add(-time.Hour), CreateTimeEnd: t0.Add(-time.Minute)}
	if p, err := s.FindMessages(ctx, q); err != nil || len(p.Messages) != 0 || p.Next != "" {
		t.Fatalf("an empty window: %d messages, next %q, %v", len(p.Messages), p.Next, err)
	}
	// The default range is the last 30 days: an older message is not in it.
	put(t, s, msg("order.changed", "ancient", "bg1", 99, time.Now().Add(-40*24*time.Hour)))
	for _, m := range all(t, s.FindMessages, backup.MessageQuery{Subject: "order.changed", Len: 100}) {
		if m.MessageID == "ancient" {
			t.Fatal("a 40-day-old message is in the default 30-day range")
		}
	}
	q = backup.MessageQuery{Subject: "order.changed", Len: 10, CreateTimeBegin: time.Now().Add(-41 * 24 * time.Hour)}
	if got := all(t, s.FindMessages, q); len(got) != 21 {
		t.Fatalf("with msgCreateTimeBegin 41 days ago: %d messages, want 21", len(got))
	}
}

func testMessageID(t *testing.T, s backup.Store) {
	t0 := base()
	put(t, s, series("order.changed", "bg1", 50, t0, time.Second)...)
	// The same message stored by two broker groups (sent again later). In
	// QMQ's layout the key has no broker group: the same id in the same
	// second is one row, so the copy here is a minute later.
	put(t, s, msg("order.changed", "order.changed.bg1.007", "bg2", 1000, t0.Add(time.Minute)))
	q := backup.MessageQuery{Subject: "order.changed", MessageID: "order.changed.bg1.007", Len: 10}
	p, err := s.FindMessages(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 2 || p.Next != "" {
		t.Fatalf("id lookup: %+v, want 2 entries", p)
	}
	groups := p.Messages[0].BrokerGroup + "," + p.Messages[1].BrokerGroup
	if groups != "bg1,bg2" && groups != "bg2,bg1" {
		t.Fatalf("id lookup found broker groups %s", groups)
	}
	// Paging an id lookup.
	q.Len = 1
	if got := all(t, s.FindMessages, q); len(got) != 2 {
		t.Fatalf("id lookup paged by 1: %d entries", len(got))
	}
	q = backup.MessageQuery{Subject: "order.changed", MessageID: "no-such-id", Len: 10}
	if p, err := s.FindMessages(ctx, q); err != nil || len(p.Messages) != 0 {
		t.Fatalf("unknown id: %+v, %v", p, err)
	}
	q = backup.MessageQuery{Subject: "order.changed", MessageID: "order.changed.bg1.007", Len: 10, CreateTimeEnd: t0.Add(6 * time.Second)}
	if p, err := s.FindMessages(ctx, q); err != nil || len(p.Messages) != 0 {
		t.Fatalf("id lookup outside its time window: %+v, %v", p, err)
	}
}

func dead(subject, id, group, consumerGroup string, seq int64, at time.Time) backup.Message {
	m := msg(subject, id, group, seq, at)
	m.Kind = backup.KindDead
	m.ConsumerGroup = consumerGroup
	m.Content = []byte("content of " + id)
	return m
}

func testDeadLetters(t *testing.T, s backup.Store) {
	t0 := base()
	put(t, s, series("order.changed", "bg1", 3, t0, time.Second)...)
	var deads []backup.Message
	for i := 0; i < 6; i++ {
		cg := "billing"
		if i%2 == 1 {
			cg = "audit"
		}
		deads = append(deads, dead("order.changed", fmt.Sprintf("dead.%d", i), "bg1", cg, int64(i), t0.Add(time.Duration(i)*time.Second)))
	}
	put(t, s, deads...)
	put(t, s, deads...)

	got := all(t, s.FindDeadLetters, backup.MessageQuery{Subject: "order.changed", ConsumerGroup: "billing", Len: 2})
	if strings.Join(ids(got), ",") != "dead.4,dead.2,dead.0" {
		t.Fatalf("billing's dead letters: %v, want dead.4,dead.2,dead.0", ids(got))
	}
	for _, m := range got {
		if m.ConsumerGroup != "billing" || m.Kind != backup.KindDead || m.BrokerGroup != "bg1" || m.Subject != "order.changed" {
			t.Fatalf("dead letter %+v", m)
		}
	}
	got = all(t, s.FindDeadLetters, backup.MessageQuery{Subject: "order.changed", Len: 4})
	if len(got) != 6 {
		t.Fatalf("all dead letters: %v", ids(got))
	}
	got = all(t, s.FindDeadLetters, backup.MessageQuery{Subject: "order.changed", MessageID: "dead.3", Len: 4})
	if len(got) != 1 || got[0].ConsumerGroup != "audit" {
		t.Fatalf("dead letter by id: %+v", got)
	}
	// Normal messages are not dead letters, and dead letters are not messages.
	for _, m := range all(t, s.FindMessages, backup.MessageQuery{Subject: "order.changed", Len: 100}) {
		if strings.HasPrefix(m.MessageID, "dead.") {
			t.Fatalf("dead letter %s among the messages", m.MessageID)
		}
	}
	m, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 5, ConsumerGroup: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Content, []byte("content of dead.5")) || m.Kind != backup.KindDead || m.ConsumerGroup != "audit" || m.MessageID != "dead.5" {
		t.Fatalf("FindMessage of a dead letter: %+v", m)
	}
	recs, err := s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", MessageID: "dead.5", Kind: backup.KindDead})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Action != backup.ActionOmit || recs[0].ConsumerGroup != "audit" || recs[0].Sequence != 5 ||
		!recs[0].Timestamp.Equal(deads[5].CreateTime.Add(500*time.Millisecond)) {
		t.Fatalf("dead records: %+v", recs)
	}
	if _, err := s.FindDeadLetters(ctx, backup.MessageQuery{Subject: "order.changed", ConsumerGroup: "never-seen", Len: 4}); !errors.Is(err, backup.ErrNotFound) || !strings.Contains(err.Error(), "consumerGroup") {
		t.Fatalf("dead letters of an unknown group: %v, want ErrNotFound naming consumerGroup", err)
	}
}

func rec(subject, group string, seq int64, consumerGroup, consumerID string, a backup.Action, at time.Time) backup.Record {
	return backup.Record{Subject: subject, BrokerGroup: group, Sequence: seq, ConsumerGroup: consumerGroup, ConsumerID: consumerID, Action: a, Timestamp: at}
}

func testRecords(t *testing.T, s backup.Store) {
	t0 := base()
	put(t, s, series("order.changed", "bg1", 3, t0, time.Second)...)
	recs := []backup.Record{
		rec("order.changed", "bg1", 1, "billing", "host-a", backup.ActionAck, t0.Add(3*time.Second)),
		rec("order.changed", "bg1", 1, "billing", "host-a", backup.ActionPull, t0.Add(2*time.Second)),
		rec("order.changed", "bg1", 1, "audit", "host-b", backup.ActionPull, t0.Add(4*time.Second)),
		rec("order.changed", "bg1", 2, "audit", "host-b", backup.ActionPull, t0.Add(5*time.Second)),
		rec("order.changed", "bg2", 1, "audit", "host-c", backup.ActionPull, t0.Add(6*time.Second)),
	}
	for range 2 {
		if err := s.PutRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 1, Kind: backup.KindNormal})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("records of bg1/1: %+v, want 3", got)
	}
	want := []backup.Record{recs[1], recs[0], recs[2]}
	for i := range want {
		g, w := got[i], want[i]
		if g.ConsumerGroup != w.ConsumerGroup || g.ConsumerID != w.ConsumerID || g.Action != w.Action || !g.Timestamp.Equal(w.Timestamp) ||
			g.Sequence != 1 || g.BrokerGroup != "bg1" || g.Subject != "order.changed" {
			t.Fatalf("record %d: %+v, want %+v (oldest first)", i, g, w)
		}
	}
	got, err = s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 0, Kind: backup.KindNormal})
	if err != nil || len(got) != 0 {
		t.Fatalf("records of a message nobody pulled: %+v, %v", got, err)
	}
	got, err = s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", BrokerGroup: "never-seen", Sequence: 1, Kind: backup.KindNormal})
	if err != nil || len(got) != 0 {
		t.Fatalf("records in an unknown broker group: %+v, %v", got, err)
	}
}

func testRetryRecords(t *testing.T, s backup.Store) {
	t0 := base()
	orig := msg("order.changed", "m-1", "bg1", 10, t0)
	retry := orig
	retry.Kind, retry.ConsumerGroup, retry.Sequence = backup.KindRetry, "billing", 3
	retry2 := retry
	retry2.ConsumerGroup, retry2.Sequence = "audit", 4
	put(t, s, orig, retry, retry2)
	recs := []backup.Record{
		rec("%RETRY%order.changed%billing", "bg1", 3, "billing", "host-a", backup.ActionPull, t0.Add(5*time.Second)),
		rec("%RETRY%order.changed%billing", "bg1", 3, "billing", "host-a", backup.ActionAck, t0.Add(6*time.Second)),
		rec("%RETRY%order.changed%audit", "bg1", 4, "audit", "host-b", backup.ActionPull, t0.Add(7*time.Second)),
		rec("order.changed", "bg1", 10, "billing", "host-a", backup.ActionPull, t0.Add(time.Second)),
	}
	if err := s.PutRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", MessageID: "m-1", Kind: backup.KindRetry})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("retry records: %+v, want 3", got)
	}
	for i, w := range recs[:3] {
		g := got[i]
		if g.ConsumerGroup != w.ConsumerGroup || g.Action != w.Action || g.Sequence != w.Sequence || g.Subject != w.Subject || !g.Timestamp.Equal(w.Timestamp) {
			t.Fatalf("retry record %d: %+v, want %+v", i, g, w)
		}
	}
	// Retry copies are not listed as messages.
	if got := all(t, s.FindMessages, backup.MessageQuery{Subject: "order.changed", Len: 10}); len(got) != 1 {
		t.Fatalf("messages with retry copies stored: %+v, want the original only", got)
	}
	got, err = s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", MessageID: "never-retried", Kind: backup.KindRetry})
	if err != nil || len(got) != 0 {
		t.Fatalf("retry records of a message never retried: %+v, %v", got, err)
	}
}

func testDetail(t *testing.T, s backup.Store) {
	t0 := base()
	with := msg("order.changed", "m-content", "bg1", 1, t0)
	with.Content = []byte{0, 1, 2, 3, 0xff}
	without := msg("order.changed", "m-bare", "bg1", 2, t0)
	put(t, s, with, without)
	m, err := s.FindMessage(ctx, ref("order.changed", "bg1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Content, with.Content) || m.MessageID != "m-content" || !m.CreateTime.Equal(t0) || m.Kind != backup.KindNormal {
		t.Fatalf("FindMessage with content: %+v", m)
	}
	if _, err := s.FindMessage(ctx, ref("order.changed", "bg1", 2)); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("FindMessage of a message kept without content: %v, want ErrNotFound", err)
	}
	// Kept without content but located: where the group's log holds it.
	located := msg("order.changed", "m-located", "bg1", 4, t0)
	located.LogOffset, located.Located = 1<<33+17, true
	put(t, s, located)
	if m, err := s.FindMessage(ctx, ref("order.changed", "bg1", 4)); err != nil || !m.Located || m.LogOffset != located.LogOffset || len(m.Content) != 0 || m.MessageID != "m-located" {
		t.Fatalf("FindMessage of a located message without content: %+v, %v", m, err)
	}
	if _, err := s.FindMessage(ctx, ref("order.changed", "bg1", 3)); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("FindMessage of a missing sequence: %v, want ErrNotFound", err)
	}
	if _, err := s.FindMessage(ctx, ref("never.seen", "bg1", 1)); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("FindMessage of an unknown subject: %v, want ErrNotFound", err)
	}
}

func retry(subject, id, group, consumerGroup string, seq int64, at time.Time, content []byte, off int64, located bool) backup.Message {
	m := msg(subject, id, group, seq, at)
	m.Kind, m.ConsumerGroup, m.Content, m.LogOffset, m.Located = backup.KindRetry, consumerGroup, content, off, located
	return m
}

// testRetryDetail: a retry copy (stored as sequence N of
// %RETRY%<subject>%<group>, numbered per group) has a detail like a normal
// message's — its content, or where the group's log holds it — found by
// its group and sequence; the retry row QMQ reads is unchanged.
func testRetryDetail(t *testing.T, s backup.Store) {
	t0 := base()
	located := retry("order.changed", "r.1", "bg1", "billing", 3, t0, nil, 1<<33+5, true)
	content := retry("order.changed", "r.1", "bg1", "audit", 3, t0.Add(time.Second), []byte("content of r.1"), 4096, true)
	bare := retry("order.changed", "r.2", "bg1", "billing", 4, t0, nil, 0, false) // indexed before offsets were recorded
	put(t, s, located, content, bare)
	put(t, s, located) // idempotent
	ref := func(group string, seq int64) backup.MessageRef {
		return backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: seq, Kind: backup.KindRetry, ConsumerGroup: group}
	}
	m, err := s.FindMessage(ctx, ref("billing", 3))
	if err != nil || m.MessageID != "r.1" || m.Kind != backup.KindRetry || m.ConsumerGroup != "billing" || !m.Located || m.LogOffset != located.LogOffset ||
		len(m.Content) != 0 || !m.CreateTime.Equal(t0) || m.Ref() != ref("billing", 3) {
		t.Fatalf("billing's located retry copy: %+v, %v", m, err)
	}
	m, err = s.FindMessage(ctx, ref("audit", 3))
	if err != nil || m.MessageID != "r.1" || m.ConsumerGroup != "audit" || string(m.Content) != "content of r.1" {
		t.Fatalf("audit's retry copy with content: %+v, %v", m, err)
	}
	for name, r := range map[string]backup.MessageRef{
		"a copy kept without content or offset": ref("billing", 4),
		"a sequence no copy has":                ref("billing", 5),
		"a group without copies":                ref("never-seen", 3),
		"the normal message at the sequence":    {Subject: "order.changed", BrokerGroup: "bg1", Sequence: 3},
		"the dead letter at the sequence":       {Subject: "order.changed", BrokerGroup: "bg1", Sequence: 3, Kind: backup.KindDead, ConsumerGroup: "billing"},
	} {
		if m, err := s.FindMessage(ctx, r); !errors.Is(err, backup.ErrNotFound) {
			t.Fatalf("%s: %+v, %v; want ErrNotFound", name, m, err)
		}
	}
	if _, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 3, Kind: backup.KindRetry}); !errors.Is(err, backup.ErrBadQuery) {
		t.Fatalf("a retry copy without its group: %v, want ErrBadQuery", err)
	}
	// The retry row itself, as QMQ reads it: the copy's records are found
	// through it.
	if err := s.PutRecords(ctx, []backup.Record{rec("%RETRY%order.changed%billing", "bg1", 3, "billing", "host-a", backup.ActionPull, t0)}); err != nil {
		t.Fatal(err)
	}
	if recs, err := s.FindRecords(ctx, backup.RecordQuery{Subject: "order.changed", MessageID: "r.1", Kind: backup.KindRetry}); err != nil || len(recs) != 1 || recs[0].Sequence != 3 || recs[0].BrokerGroup != "bg1" {
		t.Fatalf("the retry copy's records: %+v, %v", recs, err)
	}
}

// testRetryCopies: a message's retry copies are listed by its id, newest
// first, each with its consumer group and its sequence in that group's
// retry log — what names its detail.
func testRetryCopies(t *testing.T, s backup.Store) {
	t0 := base()
	put(t, s, msg("order.changed", "r.1", "bg1", 1, t0), msg("plain", "p.1", "bg1", 1, t0),
		retry("order.changed", "r.1", "bg1", "billing", 0, t0.Add(time.Second), nil, 100, true),
		retry("order.changed", "r.1", "bg2", "audit", 4, t0.Add(2*time.Second), nil, 200, true),
		retry("order.changed", "r.1", "bg1", "billing", 1, t0.Add(3*time.Second), nil, 300, true),
		retry("order.changed", "r.2", "bg1", "billing", 2, t0.Add(time.Second), nil, 400, true))
	got := all(t, s.FindRetries, backup.MessageQuery{Subject: "order.changed", MessageID: "r.1", Len: 1})
	var seen []string
	for _, m := range got {
		if m.Kind != backup.KindRetry || m.MessageID != "r.1" || m.Subject != "order.changed" {
			t.Fatalf("retry copy %+v", m)
		}
		seen = append(seen, fmt.Sprintf("%s/%s/%d", m.ConsumerGroup, m.BrokerGroup, m.Sequence))
		if d, err := s.FindMessage(ctx, m.Ref()); err != nil || d.MessageID != "r.1" || !d.Located {
			t.Fatalf("the listed copy's detail %+v: %+v, %v", m.Ref(), d, err)
		}
	}
	if strings.Join(seen, ",") != "billing/bg1/1,audit/bg2/4,billing/bg1/0" {
		t.Fatalf("r.1's retry copies, newest first: %v", seen)
	}
	got = all(t, s.FindRetries, backup.MessageQuery{Subject: "order.changed", MessageID: "r.1", ConsumerGroup: "audit", Len: 10})
	if len(got) != 1 || got[0].Sequence != 4 {
		t.Fatalf("audit's copies of r.1: %+v", got)
	}
	got = all(t, s.FindRetries, backup.MessageQuery{Subject: "order.changed", MessageID: "r.1", Len: 10, CreateTimeBegin: t0.Add(2 * time.Second), CreateTimeEnd: t0.Add(2 * time.Second)})
	if len(got) != 1 || got[0].ConsumerGroup != "audit" {
		t.Fatalf("r.1's copies in a one-second window: %+v", got)
	}
	if got := all(t, s.FindRetries, backup.MessageQuery{Subject: "plain", MessageID: "p.1", Len: 10}); len(got) != 0 {
		t.Fatalf("a subject never retried: %+v", got)
	}
	if _, err := s.FindRetries(ctx, backup.MessageQuery{Subject: "order.changed", Len: 10}); !errors.Is(err, backup.ErrBadQuery) || !strings.Contains(err.Error(), "messageId") {
		t.Fatalf("without a message id: %v, want ErrBadQuery naming messageId", err)
	}
	if _, err := s.FindRetries(ctx, backup.MessageQuery{Subject: "never.seen", MessageID: "x", Len: 10}); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("an unknown subject: %v, want ErrNotFound", err)
	}
}

func ref(subject, brokerGroup string, seq int64) backup.MessageRef {
	return backup.MessageRef{Subject: subject, BrokerGroup: brokerGroup, Sequence: seq}
}

// testDetailSameSequence: a normal message and two groups' dead letters
// stored as sequence 7 of bg1 (each in its own log) are three messages.
func testDetailSameSequence(t *testing.T, s backup.Store) {
	t0 := base()
	normal := msg("order.changed", "normal.7", "bg1", 7, t0)
	normal.Content = []byte("content of normal.7")
	put(t, s, normal,
		dead("order.changed", "dead.billing.7", "bg1", "billing", 7, t0.Add(time.Second)),
		dead("order.changed", "dead.audit.7", "bg1", "audit", 7, t0.Add(2*time.Second)),
		retry("order.changed", "retry.billing.7", "bg1", "billing", 7, t0.Add(3*time.Second), []byte("content of retry.billing.7"), 0, false))
	for _, c := range []struct {
		ref      backup.MessageRef
		id       string
		kind     backup.Kind
		consumer string
	}{
		{ref("order.changed", "bg1", 7), "normal.7", backup.KindNormal, ""},
		{backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 7, Kind: backup.KindDead, ConsumerGroup: "billing"}, "dead.billing.7", backup.KindDead, "billing"},
		{backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 7, Kind: backup.KindDead, ConsumerGroup: "audit"}, "dead.audit.7", backup.KindDead, "audit"},
		{backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 7, Kind: backup.KindRetry, ConsumerGroup: "billing"}, "retry.billing.7", backup.KindRetry, "billing"},
	} {
		m, err := s.FindMessage(ctx, c.ref)
		if err != nil {
			t.Fatalf("FindMessage(%+v): %v", c.ref, err)
		}
		if m.MessageID != c.id || m.Kind != c.kind || m.ConsumerGroup != c.consumer || !bytes.Equal(m.Content, []byte("content of "+c.id)) || m.Ref() != c.ref {
			t.Fatalf("FindMessage(%+v) = %+v (content %q), want %s", c.ref, m, m.Content, c.id)
		}
	}
	// A consumer group without Kind names its dead letter (the spelling
	// from before retry copies had a detail).
	if m, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 7, ConsumerGroup: "billing"}); err != nil || m.MessageID != "dead.billing.7" {
		t.Fatalf("a group without Kind: %+v, %v; want billing's dead letter", m, err)
	}
	// A group's dead letter that is not there is not found, whatever else
	// has the sequence.
	if _, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 8, ConsumerGroup: "billing"}); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("a missing dead letter: %v, want ErrNotFound", err)
	}
	put(t, s, msg("order.changed", "normal.9", "bg1", 9, t0))
	if _, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 9, ConsumerGroup: "billing"}); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("the dead letter of a sequence only a normal message has: %v, want ErrNotFound", err)
	}
	if _, err := s.FindMessage(ctx, backup.MessageRef{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 7, ConsumerGroup: "never-seen"}); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("the dead letter of an unknown group: %v, want ErrNotFound", err)
	}
}

// testLongNames: a 100-byte subject (the most QMQ's dictionary holds) with
// 100-byte groups: its retry copies and dead letters are keyed by the ids
// of "%RETRY%<subject>" and "%DEAD_RETRY%<subject>" (107 and 112 bytes),
// and every kind of entry is written and found.
func testLongNames(t *testing.T, s backup.Store) {
	t0 := base()
	subject := strings.Repeat("s", 100)
	group := strings.Repeat("g", 100)
	brokerGroup := strings.Repeat("b", 100)
	normal := msg(subject, "long.1", brokerGroup, 1, t0)
	retry := msg(subject, "long.1", brokerGroup, 1, t0)
	retry.Kind, retry.ConsumerGroup = backup.KindRetry, group
	put(t, s, normal, retry, dead(subject, "long.1", brokerGroup, group, 1, t0.Add(time.Second)))
	if err := s.PutRecords(ctx, []backup.Record{
		rec(subject, brokerGroup, 1, group, "host-a", backup.ActionPull, t0),
		rec("%RETRY%"+subject+"%"+group, brokerGroup, 1, group, "host-a", backup.ActionAck, t0),
	}); err != nil {
		t.Fatalf("PutRecords with long names: %v", err)
	}
	if got := all(t, s.FindMessages, backup.MessageQuery{Subject: subject, Len: 10}); len(got) != 1 || got[0].BrokerGroup != brokerGroup {
		t.Fatalf("messages of a 100-byte subject: %+v", got)
	}
	if got := all(t, s.FindDeadLetters, backup.MessageQuery{Subject: subject, ConsumerGroup: group, Len: 10}); len(got) != 1 || got[0].ConsumerGroup != group {
		t.Fatalf("dead letters of a 100-byte subject and group: %+v", got)
	}
	m, err := s.FindMessage(ctx, backup.MessageRef{Subject: subject, BrokerGroup: brokerGroup, Sequence: 1, ConsumerGroup: group})
	if err != nil || m.MessageID != "long.1" || string(m.Content) != "content of long.1" {
		t.Fatalf("the dead letter of a 100-byte subject: %+v, %v", m, err)
	}
	for kind, want := range map[backup.Kind]int{backup.KindNormal: 1, backup.KindRetry: 1, backup.KindDead: 1} {
		q := backup.RecordQuery{Subject: subject, MessageID: "long.1", BrokerGroup: brokerGroup, Sequence: 1, Kind: kind}
		if recs, err := s.FindRecords(ctx, q); err != nil || len(recs) != want {
			t.Fatalf("records of kind %d of a 100-byte subject: %+v, %v; want %d", kind, recs, err, want)
		}
	}
}

func testBadQueries(t *testing.T, s backup.Store) {
	put(t, s, series("order.changed", "bg1", 3, base(), time.Second)...)
	now := time.Now()
	bad := []struct {
		q     backup.MessageQuery
		field string
	}{
		{backup.MessageQuery{Len: 10}, "subject"},
		{backup.MessageQuery{Subject: "order.changed"}, "len"},
		{backup.MessageQuery{Subject: "order.changed", Len: backup.MaxPageLen + 1}, "len"},
		{backup.MessageQuery{Subject: "order.changed", Len: -1}, "len"},
		{backup.MessageQuery{Subject: "order.changed", Len: 10, CreateTimeBegin: now, CreateTimeEnd: now.Add(-time.Hour)}, "msgCreateTimeBegin"},
		{backup.MessageQuery{Subject: "order.changed", Len: 10, Start: "not a key"}, "start"},
		{backup.MessageQuery{Subject: "order.changed", Len: 10, Start: strings.Repeat("9", 50)}, "start"},
	}
	for _, b := range bad {
		for name, find := range map[string]func(context.Context, backup.MessageQuery) (backup.MessagePage, error){"FindMessages": s.FindMessages, "FindDeadLetters": s.FindDeadLetters} {
			_, err := find(ctx, b.q)
			if !errors.Is(err, backup.ErrBadQuery) || !strings.Contains(err.Error(), b.field) {
				t.Errorf("%s(%+v): %v; want ErrBadQuery naming %s", name, b.q, err, b.field)
			}
		}
	}
	if _, err := s.FindMessages(ctx, backup.MessageQuery{Subject: "never.seen", Len: 10}); !errors.Is(err, backup.ErrNotFound) || !strings.Contains(err.Error(), "subject") {
		t.Errorf("an unknown subject: %v; want ErrNotFound naming subject", err)
	}
	badRecs := []struct {
		q     backup.RecordQuery
		field string
	}{
		{backup.RecordQuery{BrokerGroup: "bg1"}, "subject"},
		{backup.RecordQuery{Subject: "order.changed"}, "brokerGroup"},
		{backup.RecordQuery{Subject: "order.changed", BrokerGroup: "bg1", Sequence: -1}, "sequence"},
		{backup.RecordQuery{Subject: "order.changed", Kind: backup.KindRetry}, "messageId"},
		{backup.RecordQuery{Subject: "order.changed", Kind: backup.KindDead}, "messageId"},
		{backup.RecordQuery{Subject: "order.changed", MessageID: "x", Kind: 7}, "recordCode"},
	}
	for _, b := range badRecs {
		if _, err := s.FindRecords(ctx, b.q); !errors.Is(err, backup.ErrBadQuery) || !strings.Contains(err.Error(), b.field) {
			t.Errorf("FindRecords(%+v): %v; want ErrBadQuery naming %s", b.q, err, b.field)
		}
	}
	if _, err := s.FindMessage(ctx, ref("order.changed", "", 1)); !errors.Is(err, backup.ErrBadQuery) {
		t.Errorf("FindMessage without broker group: %v", err)
	}
	// Bad entries are refused, not half written.
	for _, m := range []backup.Message{
		msg("", "id", "bg1", 1, base()),
		msg("s", "", "bg1", 1, base()),
		msg("s", "id", "", 1, base()),
		msg("s", "id", "bg1", -1, base()),
		{Subject: "s", MessageID: "id", BrokerGroup: "bg1", Kind: backup.KindDead, CreateTime: base()},
	} {
		if err := s.PutMessages(ctx, []backup.Message{m}); err == nil {
			t.Errorf("PutMessages(%+v) accepted it", m)
		}
	}
	if err := s.PutRecords(ctx, []backup.Record{{Subject: "s", BrokerGroup: "bg1", Sequence: 1, ConsumerGroup: "g", Action: 9}}); err == nil {
		t.Error("PutRecords accepted action 9")
	}
}

func testClose(t *testing.T, s backup.Store) {
	put(t, s, series("order.changed", "bg1", 1, base(), time.Second)...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.PutMessages(ctx, series("order.changed", "bg1", 1, base(), time.Second)); err == nil {
		t.Error("PutMessages after Close succeeded")
	}
	if _, err := s.FindMessages(ctx, backup.MessageQuery{Subject: "order.changed", Len: 1}); err == nil {
		t.Error("FindMessages after Close succeeded")
	}
}

// testConcurrent puts from several goroutines (new names racing for
// dictionary ids) while others query, then checks that every write is there.
func testConcurrent(t *testing.T, s backup.Store) {
	t0 := base()
	const writers, batches, per = 4, 5, 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var msgs []backup.Message
				for i := range per {
					n := b*per + i
					msgs = append(msgs, msg(fmt.Sprintf("concurrent.%d", n%3), fmt.Sprintf("w%d-%d", w, n), fmt.Sprintf("bg%d", w), int64(n), t0.Add(time.Duration(n)*time.Millisecond)))
				}
				if err := s.PutMessages(ctx, msgs); err != nil {
					t.Error(err)
					return
				}
				rec := rec(fmt.Sprintf("concurrent.%d", b%3), fmt.Sprintf("bg%d", w), int64(b), fmt.Sprintf("group-%d", w), "c", backup.ActionPull, t0)
				if err := s.PutRecords(ctx, []backup.Record{rec}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.FindMessages(ctx, backup.MessageQuery{Subject: "concurrent.1", Len: 10})
				if err != nil && !errors.Is(err, backup.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	total := 0
	for sub := range 3 {
		total += len(all(t, s.FindMessages, backup.MessageQuery{Subject: fmt.Sprintf("concurrent.%d", sub), Len: 50}))
	}
	if total != writers*batches*per {
		t.Fatalf("%d messages after concurrent puts, want %d", total, writers*batches*per)
	}
}
