package console_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/consul/sdk/testutil"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/services/console"
)

func TestMain(m *testing.M) { os.Exit(consultest.Main(m)) }

// TestClusterPageShowsConsulHealth: with consul.address set, the cluster
// page lists the agent's health checks with their status.
func TestClusterPageShowsConsulHealth(t *testing.T) {
	agent := consultest.Agent(t)
	agent.AddService(t, "qmq-broker-console-test", testutil.HealthCritical, nil)
	s := console.DefaultSettings()
	s.MetaHTTP = "127.0.0.1:1"
	s.OpenReads = true
	s.Consul = agent.HTTPAddr
	base, _ := startConsole(t, s)
	code, body, _ := get(t, base+"/cluster", nil)
	if code != 200 || !strings.Contains(body, "Consul health") || !strings.Contains(body, "qmq-broker-console-test") || !strings.Contains(body, `class="state critical"`) {
		t.Fatalf("cluster page with Consul: %d\n%s", code, body)
	}
}
