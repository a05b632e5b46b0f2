package broker

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// TestAcquireMetaRetriesAreJittered: a broker the metaserver does not know
// retries BROKER_ACQUIRE_META within [meta.retry.interval.ms/2,
// meta.retry.interval.ms], at varying delays, so brokers restarted together
// do not stay in step.
func TestAcquireMetaRetriesAreJittered(t *testing.T) {
	m := startMeta(t)
	b := startBroker2(t, m) // meta.retry.interval.ms=100
	re := regexp.MustCompile(`cannot get this broker's group and role from the metaserver; retrying.* retry_in=(\S+)`)
	var waits []time.Duration
	testutil.Eventually(t, 10*time.Second, "eight ACQUIRE_META retries", func() bool {
		waits = waits[:0]
		for _, line := range strings.Split(b.logs.String(), "\n") {
			if mm := re.FindStringSubmatch(line); mm != nil {
				d, err := time.ParseDuration(mm[1])
				if err != nil {
					t.Fatalf("retry_in %q in %q: %v", mm[1], line, err)
				}
				waits = append(waits, d)
			}
		}
		return len(waits) >= 8
	})
	distinct := map[time.Duration]bool{}
	for _, d := range waits {
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("retry_in %v, want within [50ms, 100ms]: %v", d, waits)
		}
		distinct[d] = true
	}
	if len(distinct) < 4 {
		t.Fatalf("%d retries waited only %d distinct delays, want jitter: %v", len(waits), len(distinct), waits)
	}
}

// TestFatalRoleStopsRun: an error of one of Run's goroutines (here the
// registrar's: a role this broker cannot run) stops the others, is logged
// before the shutdown, and is what Run returns.
func TestFatalRoleStopsRun(t *testing.T) {
	m := startMeta(t)
	b := startBroker2(t, m) // not registered yet: retrying every 100ms
	m.AddBroker("delay1", int(protocol.RoleDelayMaster), b.hostname, b.srv.Port())
	var err error
	select {
	case err = <-b.done:
		b.cancel = nil // Run has returned: nothing for the cleanup to stop
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the metaserver assigned an unsupported role")
	}
	if err == nil || !strings.Contains(err.Error(), "qmq broker runs real-time masters") {
		t.Fatalf("Run = %v, want the unsupported-role error", err)
	}
	logs := b.logs.String()
	stopping, stopped := strings.Index(logs, "broker stopping on error"), strings.Index(logs, "broker stopped")
	if stopping < 0 || stopped < stopping {
		t.Fatalf("want \"broker stopping on error\" logged before \"broker stopped\":\n%s", logs)
	}
}
