package delaystore

import (
	"testing"
	"time"
)

// TestClockJumps pins down what a step of the delay host's wall clock does
// (the README's "Clock jumps"): the schedule is in wall-clock milliseconds,
// so a step forward makes every message whose time was skipped due at once
// (late, never lost) — also those in buckets beyond the loaded window,
// which the loader (every second) brings in — and a step back holds
// messages already loaded until the clock reaches their time again (late by
// the step, never early by the clock).
func TestClockJumps(t *testing.T) {
	c := newClock(t0)
	s := mustOpen(t, testConfig(t, t.TempDir(), c))
	defer s.Close()
	near, far := c.At(10*time.Second), c.At(3*time.Hour) // far is beyond the 30-minute window
	if _, err := s.Append([]Message{msg(1, near), msg(2, far)}); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d entries due before their time", len(got))
	}

	// Back one hour: the near message is now an hour and ten seconds away.
	c.Add(-time.Hour)
	c.Add(30 * time.Second) // time passes on the stepped-back clock, still before near
	if got := drain(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("after a step back, %d entries came out before the clock reached them", len(got))
	}

	// Forward four hours at once: both are due, the far one after the
	// loader has brought its bucket in.
	c.Set(t0.Add(4 * time.Hour))
	var got []Entry
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		got = append(got, drain(t, s, 300*time.Millisecond)...)
	}
	if len(got) != 2 {
		t.Fatalf("after a step forward past both times, %d of 2 entries came out within 5 s", len(got))
	}
	if err := s.MarkDispatched(got); err != nil {
		t.Fatal(err)
	}
}
