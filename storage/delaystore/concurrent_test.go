package delaystore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrent: appenders, a sender, cancels and stats at once (run with
// -race): every message is delivered or cancelled exactly once.
func TestConcurrent(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil)
	cfg.Now = time.Now
	cfg.FlushSync = false
	s := mustOpen(t, cfg)
	defer s.Close()
	const appenders, per = 4, 500
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				m := Message{ScheduleTime: time.Now().Add(time.Duration(i%7) * 100 * time.Millisecond).UnixMilli(), Subject: "s",
					MessageID: fmt.Sprintf("%d-%d", g, i), Payload: []byte("x")}
				if _, err := s.Append([]Message{m}); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	var cancelled atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if ok, err := s.Cancel("s", fmt.Sprintf("0-%d", per-1-i)); err != nil {
				t.Error(err)
			} else if ok {
				cancelled.Add(1)
			}
			_ = s.Stats()
		}
	}()
	seen := map[int64]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			if int64(len(seen))+cancelled.Load() == appenders*per {
				return
			}
		default:
		}
		es, err := s.Due(ctx, 100)
		if err != nil {
			t.Fatalf("%d delivered, %d cancelled: %v", len(seen), cancelled.Load(), err)
		}
		for _, e := range es {
			if seen[e.Sequence] {
				t.Fatalf("%d twice", e.Sequence)
			}
			seen[e.Sequence] = true
			if e.ScheduleTime > time.Now().UnixMilli() {
				t.Fatalf("early")
			}
		}
		if err := s.MarkDispatched(es); err != nil {
			t.Fatal(err)
		}
		if int64(len(seen))+cancelled.Load() == appenders*per {
			<-done
			if int64(len(seen))+cancelled.Load() == appenders*per {
				return
			}
		}
	}
}
