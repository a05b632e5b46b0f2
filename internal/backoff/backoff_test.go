package backoff

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestScheduleBounds: the n-th delay lies in [d/2, d] for d = min(Min·2^n, Max).
func TestScheduleBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		want     []time.Duration // un-jittered steps
	}{
		{"exponential", 10 * time.Millisecond, time.Second, []time.Duration{10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}},
		{"linear sites' bounds", time.Second, 5 * time.Second, []time.Duration{1000, 2000, 4000, 5000, 5000}},
		{"constant", 2 * time.Second, 2 * time.Second, []time.Duration{2000, 2000, 2000}},
		{"max below min counts as min", time.Second, time.Millisecond, []time.Duration{1000, 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := 0; run < 200; run++ {
				b := Backoff{Min: tc.min, Max: tc.max}
				for i, ms := range tc.want {
					d := ms * time.Millisecond
					if got := b.Next(); got < d/2 || got > d {
						t.Fatalf("delay %d = %v, want within [%v, %v]", i, got, d/2, d)
					}
				}
			}
		})
	}
}

func TestReset(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for range 6 {
		b.Next()
	}
	if got := b.Next(); got < 3200*time.Millisecond {
		t.Fatalf("7th delay = %v, want at least 3.2s", got)
	}
	b.Reset()
	if got := b.Next(); got < 50*time.Millisecond || got > 100*time.Millisecond {
		t.Fatalf("delay after Reset = %v, want within [50ms, 100ms]", got)
	}
}

func TestNoMinNoWait(t *testing.T) {
	b := Backoff{Max: time.Second}
	for range 3 {
		if got := b.Next(); got != 0 {
			t.Fatalf("Next with Min 0 = %v, want 0", got)
		}
	}
}

// TestHugeMaxDoesNotOverflow: doubling stops at Max even near the largest Duration.
func TestHugeMaxDoesNotOverflow(t *testing.T) {
	b := Backoff{Min: time.Nanosecond, Max: math.MaxInt64}
	prev := time.Duration(0)
	for i := range 80 {
		got := b.Next()
		if got <= 0 {
			t.Fatalf("delay %d = %v: overflowed", i, got)
		}
		if i > 2 && got < prev/4 {
			t.Fatalf("delay %d = %v after %v: the schedule restarted", i, got, prev)
		}
		prev = got
	}
	if prev < math.MaxInt64/2 {
		t.Fatalf("last delay %v, want it at the cap", prev)
	}
}

// TestJitterSpreads: delays at the cap are spread over [Max/2, Max], not
// bunched: every tenth of the range is hit, and the mean is near 3/4·Max.
func TestJitterSpreads(t *testing.T) {
	const n = 20000
	b := Backoff{Min: time.Second, Max: time.Second}
	var buckets [10]int
	var sum float64
	for range n {
		f := float64(b.Next()) / float64(time.Second) // in [0.5, 1]
		sum += f
		buckets[min(int((f-0.5)*20), 9)]++
	}
	for i, c := range buckets {
		// Uniform: n/10 = 2000 each; a 4-sigma band is about ±170.
		if c < 1700 || c > 2300 {
			t.Errorf("bucket %d (%.2f–%.2f s) has %d of %d delays, want about %d: %v", i, 0.5+float64(i)/20, 0.55+float64(i)/20, c, n, n/10, buckets)
		}
	}
	if mean := sum / n; math.Abs(mean-0.75) > 0.01 {
		t.Errorf("mean delay %.3f s, want 0.75 s", mean)
	}
}

func TestSleepElapses(t *testing.T) {
	start := time.Now()
	if err := Sleep(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("Sleep(20ms) returned after %v", took)
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	start := time.Now()
	err := Sleep(ctx, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("cancelled Sleep returned after %v", took)
	}
}

func TestSleepAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	for _, d := range []time.Duration{0, -1, time.Hour} {
		if err := Sleep(ctx, d); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep(%v) on an ended context = %v, want DeadlineExceeded", d, err)
		}
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
}

func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour, Max: time.Hour}
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}
