package replication

import (
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// TestSecondLogSyncType: the second log is copied with the sync type its
// Logs names. A master replicating DelayLogs (dispatch=4) refuses a broker
// slave's action-log requests (action=1) with an explanation, while the
// message log and heartbeats are the same for both.
func TestSecondLogSyncType(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) { c.Logs = DelayLogs() })
	s, _ := startSlave(t, m.Addr().String(), slave, nil) // BrokerLogs
	testutil.EventuallyState(t, 10*time.Second, "the refusal of the action-log request", func() (bool, string) {
		e := s.Status().LastError
		return strings.Contains(e, "sync type action is not served") && strings.Contains(e, "dispatch=4"), e
	})
	t.Logf("refusal: %s", s.Status().LastError)
}
