package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestNomadConsoleBeforeMetaserver runs the console job before there is
// a metaserver, as `nomad job run` in any order may: with no passing
// qmq-metaserver in Consul the console must stop with an error naming
// what is missing (not serve a default 127.0.0.1:8080), and once the
// metaserver job is up, Nomad must re-render its configuration from the
// catalog and restart it, after which its cluster page shows the
// metaserver's groups.
func TestNomadConsoleBeforeMetaserver(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq)
	emptyDir(t, n.VolumePath(t, volMeta))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ports := testutil.FreePorts(t, 3)
	consoleHTTP := ports[2]

	consoleJob := runJob(ctx, t, n, jobs.Console, jobs.Vars{
		"qmq_binary": qmq, "driver": "raw_exec", "http_port": consoleHTTP, "consul_address": n.Consul.HTTPAddr,
		"admin_token": testToken, "cpu": 100, "memory": 128,
	})
	testutil.EventuallyState(t, 60*time.Second, "the console refusing to start without a metaserver, saying why", func() (bool, string) {
		stubs, _, err := n.Client.Jobs().Allocations(*consoleJob.ID, false, nil)
		if err != nil || len(stubs) == 0 {
			return false, fmt.Sprint(stubs, err)
		}
		logs := n.TaskLogs(stubs[0].ID, "console")
		return strings.Contains(logs, "no-passing-qmq-metaserver-in-consul"), logs
	})
	if _, code, err := get(fmt.Sprintf("http://127.0.0.1:%d/health", consoleHTTP)); err == nil {
		t.Fatalf("the console serves (/health %d) without a metaserver; it should refuse to start", code)
	}

	start := time.Now()
	runJob(ctx, t, n, jobs.Metaserver, withVars(metaTestVars(n, t, qmq, ports[0], ports[1]), jobs.Vars{"cpu": 200, "memory": 256}))
	testutil.EventuallyState(t, 90*time.Second, "the console serving the metaserver's cluster page", func() (bool, string) {
		body, code, err := getToken(fmt.Sprintf("http://127.0.0.1:%d/cluster", consoleHTTP), testToken)
		return err == nil && code == 200 && !strings.Contains(string(body), `class="err"`), fmt.Sprintf("%d %v %.1000s", code, err, body)
	})
	t.Logf("the console up %v after the metaserver job run", time.Since(start).Round(time.Millisecond))
}
