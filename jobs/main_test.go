package jobs_test

import (
	"os"
	"testing"

	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// Host volumes of the test agent: the metaserver's SQLite store and the
// two brokers of the pair (one node: each has its own).
const (
	volMeta = "qmq-test-meta"
	volA    = "qmq-test-a"
	volB    = "qmq-test-b"
	// The delay group's a and b.
	volDelayA = "qmq-test-delay-a"
	volDelayB = "qmq-test-delay-b"
	// The backup's checkpoint and Pebble store.
	volBackup = "qmq-test-backup"
	// The whole bundle's second broker pair and its backup.
	volC       = "qmq-test-c"
	volD       = "qmq-test-d"
	volBackup2 = "qmq-test-backup2"
)

func TestMain(m *testing.M) {
	os.Exit(nomadtest.Main(m, volMeta, volA, volB, volDelayA, volDelayB, volBackup, volC, volD, volBackup2))
}

// testToken is the admin token the tests give the jobs.
const testToken = "nomad-test-token!x@y"

// testSyncSecret is the brokers' sync.secret in the job tests.
const testSyncSecret = "nomad-test-sync-secret-0123456789"

// testDelayAdminSecret is delay.admin.secret in the job tests.
const testDelayAdminSecret = "nomad-test-delay-admin-secret-0123456789"
