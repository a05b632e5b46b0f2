package replication

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func waitAsync(w *slaveWaiters, end int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- w.wait(context.Background(), end) }()
	return ch
}

func waitWaiting(t *testing.T, w *slaveWaiters, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for w.waiting.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", w.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWaitersCompleteInAnyOrder(t *testing.T) {
	w := newSlaveWaiters()
	if err := w.wait(context.Background(), -1); err != nil { // nothing to wait for
		t.Fatal(err)
	}
	a := waitAsync(w, 100) // group 1: end 100
	b := waitAsync(w, 50)  // group 1 too: its end stays 100
	waitWaiting(t, w, 2)
	w.report(10)          // seals group 1
	c := waitAsync(w, 20) // group 2: end 20
	waitWaiting(t, w, 3)
	if len(w.groups) != 2 {
		t.Fatalf("%d groups, want 2", len(w.groups))
	}
	w.report(30) // completes group 2 although group 1 is older
	if err := <-c; err != nil {
		t.Fatal(err)
	}
	select {
	case <-a:
		t.Fatal("end 100 completed at 30")
	case <-b:
		t.Fatal("group 1 completed before its end")
	case <-time.After(20 * time.Millisecond):
	}
	w.report(100)
	if err := <-a; err != nil {
		t.Fatal(err)
	}
	if err := <-b; err != nil {
		t.Fatal(err)
	}
	if len(w.groups) != 0 || w.open != nil {
		t.Fatalf("groups left: %d", len(w.groups))
	}
	// Past reports count: no wait at all.
	if err := w.wait(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	// A wiped slave reports less: waits for offsets above it block again.
	w.report(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := w.wait(ctx, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait after a lower report: %v", err)
	}
}

func TestWaitersClose(t *testing.T) {
	w := newSlaveWaiters()
	a := waitAsync(w, 5)
	waitWaiting(t, w, 1)
	w.close()
	if err := <-a; !errors.Is(err, errClosed) {
		t.Fatalf("pending wait after close: %v", err)
	}
	if err := w.wait(context.Background(), 5); !errors.Is(err, errClosed) {
		t.Fatalf("wait after close: %v", err)
	}
	w.close() // idempotent
}

// TestWaitersManyConcurrent: thousands of waiters and a reporter racing;
// every waiter returns once a report reaches its end, and groups stay few.
func TestWaitersManyConcurrent(t *testing.T) {
	w := newSlaveWaiters()
	const waiters = 2000
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.wait(context.Background(), int64(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	maxGroups := 0
	for off := int64(0); off < waiters; off += 7 {
		w.report(off)
		w.mu.Lock()
		maxGroups = max(maxGroups, len(w.groups))
		w.mu.Unlock()
		time.Sleep(50 * time.Microsecond)
	}
	w.report(waiters)
	wg.Wait()
	if maxGroups > 300 {
		t.Fatalf("%d groups at once for %d waiters", maxGroups, waiters)
	}
}

func BenchmarkWaitSlaveWrote(b *testing.B) {
	w := newSlaveWaiters()
	stop := make(chan struct{})
	done := make(chan struct{})
	var end int64
	var mu sync.Mutex
	go func() { // the slave reports every 100µs, like a busy copy loop
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
			mu.Lock()
			e := end
			mu.Unlock()
			w.report(e)
		}
	}()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			end++
			e := end
			mu.Unlock()
			if err := w.wait(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	close(stop)
	<-done
}
