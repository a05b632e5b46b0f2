package delaystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendDueReadMark(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	s := mustOpen(t, cfg)
	defer s.Close()
	var msgs []Message
	for i := 0; i < 50; i++ {
		msgs = append(msgs, msg(i, c.At(time.Duration(i%5)*time.Second)))
	}
	end, err := s.Append(msgs)
	if err != nil || end != s.Stats().MessageLogEnd {
		t.Fatalf("append: end %d, %v", end, err)
	}
	if st := s.Stats(); st.InWheel != 50 || st.Scheduled != 50 {
		t.Fatalf("stats %+v", st)
	}
	// Only the 10 due now come out.
	got := drain(t, s, 50*time.Millisecond)
	if len(got) != 10 {
		t.Fatalf("due now: %d", len(got))
	}
	for _, e := range got {
		if e.ScheduleTime > c.At(0) {
			t.Fatalf("early: %+v", e)
		}
		m, err := s.Read(e)
		if err != nil {
			t.Fatal(err)
		}
		var want Message
		for _, w := range msgs {
			if w.MessageID == m.MessageID {
				want = w
			}
		}
		if want.Subject != m.Subject || !bytes.Equal(want.Payload, m.Payload) || want.ScheduleTime != m.ScheduleTime {
			t.Fatalf("read %+v, want %+v", m, want)
		}
	}
	if err := s.MarkDispatched(got); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Second)
	if got := drain(t, s, 50*time.Millisecond); len(got) != 20 {
		t.Fatalf("after 2s: %d", len(got))
	}
	if st := s.Stats(); st.InWheel != 20 || st.InFlight != 20 || st.Scheduled != 40 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDueBlocksUntilDue(t *testing.T) {
	c := newClock(time.Now())
	cfg := testConfig(t, t.TempDir(), c)
	cfg.Now = time.Now
	s := mustOpen(t, cfg)
	defer s.Close()
	at := time.Now().Add(300 * time.Millisecond).UnixMilli()
	done := make(chan []Entry)
	go func() {
		es, _ := s.Due(context.Background(), 10)
		done <- es
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Append([]Message{msg(1, at)}); err != nil {
		t.Fatal(err)
	}
	es := <-done
	if now := time.Now().UnixMilli(); len(es) != 1 || now < at {
		t.Fatalf("got %v at %d (due %d)", es, now, at)
	}
}

func TestRefusesBadMessages(t *testing.T) {
	c := newClock(t0)
	s := mustOpen(t, testConfig(t, t.TempDir(), c))
	defer s.Close()
	for _, m := range []Message{
		{ScheduleTime: 0, Subject: "a", MessageID: "1", Payload: []byte("x")},
		{ScheduleTime: -5, Subject: "a", MessageID: "1", Payload: []byte("x")},
		{ScheduleTime: maxScheduleTime + 1, Subject: "a", MessageID: "1", Payload: []byte("x")},
		{ScheduleTime: 1, Subject: "", MessageID: "1", Payload: []byte("x")},
		{ScheduleTime: 1, Subject: "a", MessageID: "", Payload: []byte("x")},
		{ScheduleTime: 1, Subject: "a", MessageID: "1"},
		{ScheduleTime: 1, Subject: "a", MessageID: "1", Payload: make([]byte, 65<<10)},
	} {
		if _, err := s.Append([]Message{m}); err == nil {
			t.Errorf("accepted %+v", m)
		}
	}
	_, err := s.Append([]Message{{ScheduleTime: 0, Subject: "a", MessageID: "1", Payload: []byte("x")}})
	if !strings.Contains(err.Error(), "schedule time 0") {
		t.Errorf("unclear error %v", err)
	}
}

func TestScaleCannotChange(t *testing.T) {
	c := newClock(t0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	mustOpen(t, cfg).Close()
	cfg.SegmentScale = 10 * time.Minute
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Fatalf("opened with a new scale: %v", err)
	}
	cfg.SegmentScale = 3 * time.Minute
	if _, err := Open(cfg); err == nil {
		t.Fatal("scale 3 accepted")
	}
}

// TestRestart: undelivered entries come back, dispatched and cancelled ones
// do not, and future buckets load when their time comes.
func TestRestart(t *testing.T) {
	c := newClock(t0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	cfg.SegmentScale = 5 * time.Minute
	cfg.LoadAhead = 2 * time.Minute
	s := mustOpen(t, cfg)
	var msgs []Message
	for i := 0; i < 100; i++ {
		msgs = append(msgs, msg(i, c.At(time.Duration(i)*10*time.Second))) // up to 990 s ahead
	}
	if _, err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Cancel("subject.0", "id-3"); !ok || err != nil { // loaded
		t.Fatalf("cancel loaded: %v %v", ok, err)
	}
	if ok, err := s.Cancel("subject.0", "id-90"); !ok || err != nil { // not loaded (900 s ahead)
		t.Fatalf("cancel unloaded: %v %v", ok, err)
	}
	if ok, _ := s.Cancel("subject.0", "id-90"); ok {
		t.Fatal("cancelled twice")
	}
	if ok, _ := s.Cancel("subject.1", "id-90"); ok {
		t.Fatal("cancelled an unknown message")
	}
	c.Add(100 * time.Second)
	got := drain(t, s, 50*time.Millisecond) // ids 0..10 minus 3
	if len(got) != 10 {
		t.Fatalf("due: %d", len(got))
	}
	if err := s.MarkDispatched(got[:5]); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Cancel("subject.1", "id-1"); ok {
		t.Fatal("cancelled a delivered message")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	again := drain(t, s, 50*time.Millisecond)
	if len(again) != 5 {
		t.Fatalf("after restart: %d due, want the 5 unmarked", len(again))
	}
	marked := map[int64]bool{}
	for _, e := range got[:5] {
		marked[e.Sequence] = true
	}
	for _, e := range again {
		if marked[e.Sequence] {
			t.Fatalf("dispatched entry %d returned again", e.Sequence)
		}
	}
	// Everything else, bucket by bucket as the clock moves.
	seen := map[string]bool{}
	for i := 0; i < 120; i++ {
		c.Add(10 * time.Second)
		if err := s.loadDue(); err != nil {
			t.Fatal(err)
		}
		for _, e := range drain(t, s, 5*time.Millisecond) {
			if e.ScheduleTime > c.At(0) {
				t.Fatalf("early %+v", e)
			}
			m, err := s.Read(e)
			if err != nil {
				t.Fatal(err)
			}
			seen[m.MessageID] = true
		}
	}
	if len(seen) != 100-11-1 || seen["id-90"] || seen["id-3"] {
		t.Fatalf("saw %d later messages (id-90 %v)", len(seen), seen["id-90"])
	}
}

// TestRebuildFromMessageLog: the buckets and the checkpoint are derived.
func TestRebuildFromMessageLog(t *testing.T) {
	c := newClock(t0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	s := mustOpen(t, cfg)
	var msgs []Message
	for i := 0; i < 300; i++ {
		msgs = append(msgs, msg(i, c.At(time.Duration(i)*time.Second)))
	}
	if _, err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, d := range []string{scheduleDir, checkpointDir} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	if st := s.Stats(); st.InWheel != 300 {
		t.Fatalf("rebuilt %d entries", st.InWheel)
	}
}

func TestClosed(t *testing.T) {
	c := newClock(t0)
	s := mustOpen(t, testConfig(t, t.TempDir(), c))
	s.Close()
	if _, err := s.Append([]Message{msg(1, c.At(0))}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := s.Due(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestAsyncFlush: without FlushSync an append reaches the wheel within
// FlushInterval, and LogAppended fires.
func TestAsyncFlush(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	cfg.FlushSync = false
	cfg.FlushInterval = 20 * time.Millisecond
	s := mustOpen(t, cfg)
	defer s.Close()
	ch := s.LogAppended(MessageLog)
	if _, err := s.Append([]Message{msg(1, c.At(0))}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("LogAppended did not fire")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if es, err := s.Due(ctx, 10); err != nil || len(es) != 1 {
		t.Fatalf("due: %v %v", es, err)
	}
}

// TestIdleBuckets: buckets outside the window are closed (file descriptors)
// and reopened where their records end when written or loaded.
func TestIdleBuckets(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	s := mustOpen(t, cfg)
	far := c.At(48 * time.Hour)
	if _, err := s.Append([]Message{msg(1, far), msg(2, c.At(time.Second))}); err != nil {
		t.Fatal(err)
	}
	s.replayMu.Lock()
	if err := s.checkpointLocked(); err != nil {
		t.Fatal(err)
	}
	s.closeIdle(true)
	s.replayMu.Unlock()
	b := s.getBucket(s.bucketID(far))
	if b.log.Load() != nil {
		t.Fatal("idle far bucket still open")
	}
	if s.getBucket(s.bucketID(c.At(0))).log.Load() == nil {
		t.Fatal("loaded bucket closed")
	}
	if _, err := s.Append([]Message{msg(3, far+1)}); err != nil { // reopens it
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	if s.getBucket(s.bucketID(far)).log.Load() != nil {
		t.Fatal("far bucket open after Open")
	}
	if _, err := s.Append([]Message{msg(4, far+2)}); err != nil {
		t.Fatal(err)
	}
	c.Set(time.UnixMilli(far + 10))
	if err := s.loadDue(); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s, 20*time.Millisecond)
	if len(got) != 4 {
		t.Fatalf("%d due", len(got))
	}
	for _, e := range got {
		if _, err := s.Read(e); err != nil {
			t.Fatal(err)
		}
	}
}
