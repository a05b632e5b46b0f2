package lograte

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestAllowOncePerIntervalAndCount(t *testing.T) {
	l := &Limiter{Interval: time.Second}
	t0 := time.Unix(1000, 0)
	if ok, n := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first line: ok=%v n=%d, want through with nothing held back", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i+1) * 100 * time.Millisecond)); ok {
			t.Fatalf("line %d within the interval let through", i)
		}
	}
	if ok, n := l.Allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("after the interval: ok=%v n=%d, want through with 5 held back", ok, n)
	}
}

func TestZeroValueUsesDefaultInterval(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	l.Allow(t0)
	if ok, _ := l.Allow(t0.Add(DefaultInterval - time.Millisecond)); ok {
		t.Fatal("zero-value limiter let a second line through within DefaultInterval")
	}
	if ok, n := l.Allow(t0.Add(DefaultInterval)); !ok || n != 1 {
		t.Fatalf("after DefaultInterval: ok=%v n=%d", ok, n)
	}
}

func TestWarnAddsTheCount(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
	l := &Limiter{Interval: 50 * time.Millisecond}
	for range 3 {
		l.Warn(log, "refused", "peer", "x")
	}
	time.Sleep(60 * time.Millisecond)
	l.Warn(log, "refused", "peer", "y")
	out := buf.String()
	if got := strings.Count(out, "refused"); got != 2 {
		t.Fatalf("%d lines written, want 2:\n%s", got, out)
	}
	if !strings.Contains(out, SuppressedKey+"=2") {
		t.Fatalf("second line does not count the 2 held back:\n%s", out)
	}
}
