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
)

func TestMain(m *testing.M) { os.Exit(nomadtest.Main(m, volMeta, volA, volB)) }

// testToken is the admin token the tests give the jobs.
const testToken = "nomad-test-token!x@y"

// testSyncSecret is the brokers' sync.secret in the job tests.
const testSyncSecret = "nomad-test-sync-secret-0123456789"
