package storage

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/messagelog"
)

// appendTracked appends n messages of subject and returns the message-log
// end after each (record boundaries).
func appendTracked(t *testing.T, s *Store, subject string, n int) []int64 {
	t.Helper()
	ends := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		seq := s.msgs.NextSequence(subject)
		res, err := s.Append(context.Background(), []messagelog.Message{{Subject: subject, Payload: payloadFor(subject, seq)}})
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, res[0].Offset+int64(res[0].Size))
	}
	return ends
}

// firstReadable is the lowest sequence of subject that reads (retention
// deleted those before it); -1 if none does.
func firstReadable(s *Store, subject string) int64 {
	for seq := int64(0); seq <= s.MaxSequence(subject); seq++ {
		if rec, err := s.Read(subject, seq); err == nil {
			rec.Release()
			return seq
		}
	}
	return -1
}

func waitDispatched(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDispatched(ctx, s.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
}

// A former master's tail (messages and actions it never replicated) is
// cut; reopened, the store serves exactly what it had at the cut, with
// consumer logs rebuilt from the message log and the pull-log table
// replayed from the action log, and appends continue from there.
func TestTruncateLogsCutsUnreplicatedTail(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MessageSegmentSize = 64 << 10 // the cut lies a few segments back
	s := openStore(t, cfg)
	subjects := []string{"a", "b"}
	appendN(t, s, subjects, 1000)
	if err := s.ApplyActions(pullsFor("a", 0, 30)); err != nil {
		t.Fatal(err)
	}
	waitDispatched(t, s)
	msgCut, actCut := s.LogEnd(MessageLog), s.LogEnd(ActionLog)
	// The reference: the same history without the tail.
	ref := openStore(t, testConfig(t.TempDir()))
	defer ref.Close()
	if err := ref.ApplyActions(pullsFor("a", 0, 30)); err != nil {
		t.Fatal(err)
	}

	// The tail: more messages and actions, checkpoints saved past the cut.
	appendN(t, s, subjects, 700)
	if err := s.ApplyActions(pullsFor("a", 30, 40)); err != nil {
		t.Fatal(err)
	}
	waitDispatched(t, s)
	msgEnd, actEnd := s.LogEnd(MessageLog), s.LogEnd(ActionLog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	oldMsg, oldAct, err := TruncateLogs(cfg, msgCut, actCut)
	if err != nil {
		t.Fatal(err)
	}
	if oldMsg < msgEnd || oldAct < actEnd {
		t.Fatalf("TruncateLogs reports ends %d/%d before the cut, want at least %d/%d", oldMsg, oldAct, msgEnd, actEnd)
	}
	s = openStore(t, cfg)
	if got := s.LogEnd(MessageLog); got != msgCut {
		t.Fatalf("message log ends at %d after the cut, want %d", got, msgCut)
	}
	if got := s.LogEnd(ActionLog); got != actCut {
		t.Fatalf("action log ends at %d after the cut, want %d", got, actCut)
	}
	checkAll(t, s, subjects, map[string]int64{"a": 500, "b": 500})
	for _, sub := range subjects {
		if _, err := s.Read(sub, 500); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s/500 was in the cut tail: read gives %v", sub, err)
		}
	}
	sameTables(t, s, ref)

	// Writes go on from the cut, and survive another restart.
	appendN(t, s, subjects, 200)
	checkAll(t, s, subjects, map[string]int64{"a": 600, "b": 600})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	defer s.Close()
	checkAll(t, s, subjects, map[string]int64{"a": 600, "b": 600})
}

// Ends at or past the logs' ends leave the store as it is.
func TestTruncateLogsNothingToCut(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := openStore(t, cfg)
	appendN(t, s, []string{"a"}, 300)
	if err := s.ApplyActions(pullsFor("a", 0, 10)); err != nil {
		t.Fatal(err)
	}
	waitDispatched(t, s)
	msgEnd, actEnd := s.LogEnd(MessageLog), s.LogEnd(ActionLog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The segment files' capacity lies past the records: that is no tail.
	for _, ends := range [][2]int64{{msgEnd, actEnd}, {msgEnd + 1<<30, actEnd + 1<<30}} {
		if _, _, err := TruncateLogs(cfg, ends[0], ends[1]); err != nil {
			t.Fatalf("TruncateLogs(%d, %d): %v", ends[0], ends[1], err)
		}
	}
	s = openStore(t, cfg)
	defer s.Close()
	if s.LogEnd(MessageLog) != msgEnd || s.LogEnd(ActionLog) != actEnd {
		t.Fatalf("ends %d/%d, want %d/%d untouched", s.LogEnd(MessageLog), s.LogEnd(ActionLog), msgEnd, actEnd)
	}
	checkAll(t, s, []string{"a"}, map[string]int64{"a": 300})

	// A store that never wrote anything.
	empty := testConfig(t.TempDir())
	if _, _, err := TruncateLogs(empty, 0, 0); err != nil {
		t.Fatalf("empty store: %v", err)
	}
}

// Retention edges: a cut inside the retained segments rebuilds the consumer
// logs from the first retained message; a cut before the first retained
// segment is refused with advice (the bytes are gone).
func TestTruncateLogsAfterRetention(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MessageSegmentSize = 64 << 10
	s := openStore(t, cfg)
	ends := appendTracked(t, s, "s", 3000)
	waitDispatched(t, s)
	segs := s.msgs.Segments()
	if len(segs) < 4 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	old := time.Now().Add(-100 * time.Hour)
	for _, seg := range segs[:2] {
		if err := os.Chtimes(seg.Path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	s.applyRetention(time.Now())
	first := s.msgs.Segments()[0].BaseOffset
	if first == 0 {
		t.Fatal("retention deleted nothing")
	}
	firstSeq := firstReadable(s, "s")
	if firstSeq == 0 {
		t.Fatal("retention deleted no message")
	}
	actEnd := s.LogEnd(ActionLog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Before the first retained segment: refused, nothing changed.
	if _, _, err := TruncateLogs(cfg, ends[0], actEnd); err == nil || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("cut at %d before the first retained offset %d: want a refusal naming retention, got %v", ends[0], first, err)
	}
	// Inside the retained part, at message 2500's end.
	cut := ends[2499]
	if _, _, err := TruncateLogs(cfg, cut, actEnd); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	defer s.Close()
	if got := s.LogEnd(MessageLog); got != cut {
		t.Fatalf("message log ends at %d, want %d", got, cut)
	}
	waitDispatched(t, s)
	if got := s.MaxSequence("s"); got != 2499 {
		t.Fatalf("max sequence %d after the cut, want 2499", got)
	}
	if got := firstReadable(s, "s"); got != firstSeq {
		t.Fatalf("first readable sequence %d after the cut, want the first retained one, %d", got, firstSeq)
	}
	for seq := firstSeq; seq <= 2499; seq++ {
		rec, err := s.Read("s", seq)
		if err != nil {
			t.Fatalf("read s/%d: %v", seq, err)
		}
		if string(rec.Payload) != string(payloadFor("s", seq)) {
			t.Fatalf("s/%d: wrong payload %.40q", seq, rec.Payload)
		}
		rec.Release()
	}
	if _, err := s.Read("s", 2500); !errors.Is(err, ErrNotFound) {
		t.Fatalf("s/2500 was cut: %v", err)
	}
}
