package delaystore

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// appendMany appends n messages with small payloads, at(i) giving each one's
// schedule time, in batches.
func appendMany(t testing.TB, s *Store, n int, at func(i int) int64) {
	t.Helper()
	payload := make([]byte, 100)
	batch := make([]Message, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, Message{ScheduleTime: at(i), Subject: "order.changed", MessageID: fmt.Sprintf("%016d", i), Payload: payload})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// TestRestartMillion: Open with 1,000,000 scheduled entries in the window,
// reporting the time to Open (target < 5 s) and the heap bytes per entry.
func TestRestartMillion(t *testing.T) {
	const n = 1_000_000
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	cfg.MessageSegmentSize = 64 << 20
	cfg.FlushSync = false
	cfg.FlushInterval = 100 * time.Millisecond
	s := mustOpen(t, cfg)
	begin := time.Now()
	appendMany(t, s, n, func(i int) int64 { return c.At(time.Minute) + int64(i*7919)%(25*60*1000) })
	appendTook := time.Since(begin)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	begin = time.Now()
	s = mustOpen(t, cfg)
	took := time.Since(begin)
	runtime.GC()
	runtime.ReadMemStats(&after)
	defer s.Close()
	st := s.Stats()
	if st.InWheel != n {
		t.Fatalf("%d entries in the wheel after restart", st.InWheel)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("append of %d messages: %v (%.0f msg/s); Open: %v; heap %.1f bytes/entry", n, appendTook, n/appendTook.Seconds(), took, per)
	if took > 5*time.Second {
		t.Errorf("Open took %v, target 5 s", took)
	}
	if per > 40 {
		t.Errorf("%.1f bytes/entry, budget 40", per)
	}
}

// TestSameSecond100k: 100,000 entries due in the same second all come out
// of Due within a few seconds.
func TestSameSecond100k(t *testing.T) {
	const n = 100_000
	cfg := testConfig(t, t.TempDir(), nil)
	cfg.Now = time.Now
	cfg.MessageSegmentSize = 64 << 20
	cfg.FlushSync = false
	cfg.FlushInterval = 50 * time.Millisecond
	s := mustOpen(t, cfg)
	defer s.Close()
	due := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	// Spread over the second, the last ones are due 999 ms after the first;
	// the time measured is from the second's start.
	appendMany(t, s, n, func(i int) int64 { return due.UnixMilli() + int64(i%1000) })
	for s.Stats().InWheel < n {
		if time.Now().After(due) {
			t.Fatalf("only %d of %d entries in the wheel at their due time", s.Stats().InWheel, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Until(due))
	begin := time.Now()
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for got < n {
		es, err := s.Due(ctx, 1000)
		if err != nil {
			t.Fatalf("after %d entries: %v", got, err)
		}
		if err := s.MarkDispatched(es); err != nil {
			t.Fatal(err)
		}
		got += len(es)
	}
	took := time.Since(begin)
	t.Logf("%d entries due in one second: Due+MarkDispatched of all took %v", n, took)
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	if late := time.Since(due.Add(999 * time.Millisecond)); late > 0 {
		t.Logf("the last entry came out %v after it was due", late)
	}
}
