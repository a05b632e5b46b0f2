package backup

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/backup"
)

func testFollower(st backup.Store) *follower {
	s := DefaultSettings()
	s.StoreRetryMin, s.StoreRetryMax = time.Millisecond, 5*time.Millisecond
	m := newMetrics(func() Lag { return Lag{} }, func() int { return 0 })
	return newFollower(s, st, nil, newSkipList(nil, "", 0, hclog.NewNullLogger(), m), hclog.NewNullLogger(), m)
}

func skipped(f *follower) float64 {
	var m dto.Metric
	_ = f.m.skippedEntries.Write(&m)
	return m.GetCounter().GetValue()
}

// TestPoisonEntrySkipped: an entry the store refuses while it takes the
// others (alone in its batch or not) is skipped and counted, and the rest
// is written; a store refusing every entry of a batch is retried, nothing
// skipped.
func TestPoisonEntrySkipped(t *testing.T) {
	st := newMemStore()
	st.poison = func(s string) bool { return s == "bad" }
	f := testFollower(st)
	ctx := context.Background()
	msgs := []backup.Message{{Subject: "a", Sequence: 1}, {Subject: "bad", Sequence: 2}, {Subject: "c", Sequence: 3}}
	if err := writeBatch(f, ctx, msgs, st.PutMessages, describeMessage); err != nil {
		t.Fatal(err)
	}
	if len(st.messages(backup.KindNormal, "a")) != 1 || len(st.messages(backup.KindNormal, "c")) != 1 || skipped(f) != 1 {
		t.Fatalf("a: %d, c: %d, skipped %v; want the good ones written and one skipped",
			len(st.messages(backup.KindNormal, "a")), len(st.messages(backup.KindNormal, "c")), skipped(f))
	}
	if err := writeBatch(f, ctx, msgs[1:2], st.PutMessages, describeMessage); err != nil || skipped(f) != 2 {
		t.Fatalf("a lone poison entry: %v, skipped %v", err, skipped(f))
	}

	st.poison = func(string) bool { return true } // the store, not the entries
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := writeBatch(f, cctx, []backup.Message{{Subject: "x", Sequence: 1}, {Subject: "y", Sequence: 2}}, st.PutMessages, describeMessage); err == nil {
		t.Fatal("a store refusing everything: the batch was given up")
	}
	if skipped(f) != 2 || len(st.messages(backup.KindNormal, "x")) != 0 {
		t.Fatalf("a store refusing everything made the follower skip entries: skipped %v", skipped(f))
	}
	// Unavailable is never skipped, however long.
	st.poison = nil
	st.fail.Store(true)
	cctx2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if err := writeBatch(f, cctx2, msgs[:1], st.PutMessages, describeMessage); err == nil || skipped(f) != 2 {
		t.Fatalf("an unavailable store: %v, skipped %v", err, skipped(f))
	}
}
