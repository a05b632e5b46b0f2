package testutil

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message instead of
// ending the test, so the failure path can be checked.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	r := &recorder{TB: t}
	Eventually(r, time.Second, "the third call", func() bool { return calls.Add(1) >= 3 })
	if r.failed != "" || calls.Load() != 3 {
		t.Fatalf("failed %q after %d calls; want success on the third", r.failed, calls.Load())
	}
}

func TestEventuallyTimesOutNamingWhat(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	Eventually(r, 50*time.Millisecond, "never", func() bool { return false })
	if took := time.Since(start); took < 50*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v; want about 50ms", took)
	}
	if want := "timed out after 50ms waiting for never"; r.failed != want {
		t.Errorf("message %q, want %q", r.failed, want)
	}
}

func TestEventuallyStateReportsLastState(t *testing.T) {
	r := &recorder{TB: t}
	n := 0
	EventuallyState(r, 30*time.Millisecond, "ten acks", func() (bool, string) { n++; return false, fmt.Sprintf("%d acks", n) })
	if want := fmt.Sprintf("timed out after 30ms waiting for ten acks; last: %d acks", n); r.failed != want {
		t.Errorf("message %q, want %q", r.failed, want)
	}
}

func TestPollInterval(t *testing.T) {
	for _, c := range []struct{ timeout, want time.Duration }{
		{time.Millisecond, 5 * time.Millisecond},
		{10 * time.Second, 20 * time.Millisecond},
		{time.Hour, 200 * time.Millisecond},
	} {
		if got := pollInterval(c.timeout); got != c.want {
			t.Errorf("pollInterval(%v) = %v, want %v", c.timeout, got, c.want)
		}
	}
}

func TestFreePortsDistinctAndFree(t *testing.T) {
	ports := FreePorts(t, 8)
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 8 distinct positive ports", ports)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	if err != nil {
		t.Fatalf("port %d still held after FreePorts returned: %v", ports[0], err)
	}
	l.Close()
}
