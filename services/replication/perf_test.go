//go:build perf

// Figures, not checks (the bound is loose): out of `make test` and its race
// run, in `make perf`.

package replication

import (
	"testing"
	"time"
)

// TestPerfReplicationLag: 5,000 messages/s of 1 KiB (a batch of
// 10 every 2 ms) for 2 s; the time until WaitSlaveWrote returns.
func TestPerfReplicationLag(t *testing.T) {
	lags := lagUnderLoad(t, 2*time.Millisecond, 2*time.Second)
	p50, p99, worst := percentile(lags, 0.50), percentile(lags, 0.99), lags[len(lags)-1]
	t.Logf("%d batches: replication lag p50 %s, p99 %s, max %s", len(lags), p50, p99, worst)
	if p99 > time.Second {
		t.Fatalf("p99 replication lag %s", p99)
	}
}
