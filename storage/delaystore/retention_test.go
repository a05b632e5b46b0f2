package delaystore

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestRetention: buckets and dispatch-log segments go only after their keep
// times, only with DeleteExpired, and a bucket with undelivered entries
// stays.
func TestRetention(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		start := time.Now().Truncate(time.Hour)
		c := newClock(start)
		dir := t.TempDir()
		cfg := testConfig(t, dir, c)
		cfg.DeleteExpired = enabled
		cfg.DispatchSegmentSize = 32 * 4 // 4 records per segment
		cfg.MessageSegmentSize = 256 << 10
		cfg.MaxMessageSize = 1 << 10
		cfg.MessageLogRetention = time.Hour
		s := mustOpen(t, cfg)
		// Bucket A: delivered; bucket B (next hour): one message left undelivered.
		var msgs []Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, msg(i, c.At(time.Duration(i)*time.Minute)))
		}
		msgs = append(msgs, msg(100, c.At(90*time.Minute)))
		if _, err := s.Append(msgs); err != nil {
			t.Fatal(err)
		}
		c.Add(10 * time.Minute)
		es := drain(t, s, 20*time.Millisecond)
		if len(es) != 10 {
			t.Fatalf("due %d", len(es))
		}
		if err := s.MarkDispatched(es); err != nil {
			t.Fatal(err)
		}
		c.Add(90 * time.Minute) // bucket B entered the window and is due
		if err := s.loadDue(); err != nil {
			t.Fatal(err)
		}
		if got := drain(t, s, 20*time.Millisecond); len(got) != 1 {
			t.Fatalf("bucket B: %d due", len(got))
		} // handed out, never marked
		buckets := func() int { return len(listDir(t, filepath.Join(dir, scheduleDir))) }
		dispSegs := func() int { return len(listDir(t, filepath.Join(dir, dispatchDir))) }
		if buckets() != 2 || dispSegs() != 3 {
			t.Fatalf("%d buckets, %d dispatch segments", buckets(), dispSegs())
		}
		// Before ScheduleCleanAfter: nothing goes.
		c.Set(start.Add(time.Hour + cfg.ScheduleCleanAfter - time.Minute))
		if err := s.runRetention(); err != nil {
			t.Fatal(err)
		}
		if buckets() != 2 || dispSegs() != 3 {
			t.Fatalf("early deletion: %d buckets, %d dispatch segments", buckets(), dispSegs())
		}
		// After it: bucket A goes (if enabled); its dispatch records stay
		// until DispatchLogKeep after they were written.
		c.Set(start.Add(time.Hour + cfg.ScheduleCleanAfter + time.Minute))
		if err := s.runRetention(); err != nil {
			t.Fatal(err)
		}
		wantBuckets := 2
		if enabled {
			wantBuckets = 1
		}
		if buckets() != wantBuckets || dispSegs() != 3 {
			t.Fatalf("enabled=%v: %d buckets, %d dispatch segments", enabled, buckets(), dispSegs())
		}
		c.Set(start.Add(10*time.Minute + cfg.DispatchLogKeep + time.Minute))
		if err := s.runRetention(); err != nil {
			t.Fatal(err)
		}
		// Bucket B keeps its undelivered entry; dispatch segments of
		// bucket A go, except the last (active) one.
		wantDisp := 3
		if enabled {
			wantDisp = 1
		}
		if buckets() != wantBuckets || dispSegs() != wantDisp {
			t.Fatalf("enabled=%v after keep: %d buckets, %d dispatch segments", enabled, buckets(), dispSegs())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// The undelivered entry comes back after a restart; nothing else.
		s = mustOpen(t, cfg)
		if got := drain(t, s, 20*time.Millisecond); len(got) != 1 {
			t.Fatalf("enabled=%v: %d due after restart", enabled, len(got))
		}
		s.Close()
	}
}

// TestMessageLogRetention: replayed message-log segments go after
// MessageLogRetention; messages stay readable from their buckets.
func TestMessageLogRetention(t *testing.T) {
	c := newClock(time.Now())
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	cfg.DeleteExpired = true
	cfg.MessageSegmentSize = 160 << 10
	cfg.MaxMessageSize = 1 << 10
	cfg.MessageLogRetention = time.Hour
	s := mustOpen(t, cfg)
	defer s.Close()
	appendMany(t, s, 3000, func(i int) int64 { return c.At(time.Minute) })
	segs := len(listDir(t, filepath.Join(dir, messageDir)))
	if segs < 3 {
		t.Fatalf("%d segments", segs)
	}
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(dir, messageDir))); n != segs {
		t.Fatalf("deleted before retention: %d of %d left", n, segs)
	}
	c.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(dir, messageDir))); n != 1 {
		t.Fatalf("%d segments left, want the active one", n)
	}
	es := drain(t, s, 20*time.Millisecond)
	if len(es) != 3000 {
		t.Fatalf("%d due", len(es))
	}
	for _, e := range es[:10] {
		if _, err := s.Read(e); err != nil {
			t.Fatal(err)
		}
	}
}
