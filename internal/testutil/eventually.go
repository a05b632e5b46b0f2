package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it returns true and fails t with "timed out
// after <timeout> waiting for <what>" if it has not by then. cond runs in
// the calling goroutine, which must be the test's (t.Fatalf).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyState(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// EventuallyState is Eventually for a condition that can say what it saw:
// cond returns whether it holds and, when it does not, the state that
// falls short (a count, a role, a lag). The failure message ends with the
// last state, so a timeout says how far things got, not just that they
// did not.
func EventuallyState(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := pollInterval(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			if state == "" {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, state)
			}
			return // when t is not a *testing.T whose Fatalf ends the goroutine
		}
		time.Sleep(interval)
	}
}

// pollInterval spreads about 500 polls over timeout, between every 5 ms and
// every 200 ms: a short wait notices the change promptly, and a long one
// (a Nomad job, a Consul check) does not hammer a shared machine with
// conditions that cost an HTTP request each.
func pollInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/500, 5*time.Millisecond), 200*time.Millisecond)
}
