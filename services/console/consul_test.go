package console_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/testutil"

	"github.com/qmq-go/qmq/consul/consultest"
	qtestutil "github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/console"
	"github.com/qmq-go/qmq/services/delay"
	"github.com/qmq-go/qmq/tests/framework"
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

// TestConsoleFindsHTTPPortsThroughConsul: a broker and a delay server
// registered in a real Consul agent carry their HTTP port in the
// registration's meta; a console with consul.address and neither
// console.broker.http.ports nor an offset reads their /health (and the
// delay server's /subjects) at those ports.
func TestConsoleFindsHTTPPortsThroughConsul(t *testing.T) {
	agent := consultest.Agent(t)
	c := framework.StartCluster(t, framework.ClusterOptions{Configure: func(_ string, _ int, s *broker.Settings) {
		s.ConsulAddress = agent.HTTPAddr
	}})
	srv := startDelayServer(t, c.Meta(), "consul_delay", func(s *delay.Settings) { s.ConsulAddress = agent.HTTPAddr })
	s := console.DefaultSettings()
	s.MetaHTTP = c.Meta().HTTP()
	s.Tokens = map[string]string{testToken: "ops-team"}
	s.BrokerHTTPOffset = -1 // nothing to guess from: Consul must say
	s.Consul = agent.HTTPAddr
	base, _ := startConsole(t, s)
	auth := map[string]string{"X-Api-Token": testToken}

	bs := c.Groups()[0].Master.Settings()
	brokerHTTP := net.JoinHostPort("127.0.0.1", strconv.Itoa(bs.HTTPPort))
	_, delayPort, _ := net.SplitHostPort(srv.HTTPAddr().String())
	delayHTTP := net.JoinHostPort("127.0.0.1", delayPort)
	qtestutil.EventuallyState(t, 20*time.Second, "the cluster page to show both servers' /health through Consul's http_port", func() (bool, string) {
		_, body, _ := get(t, base+"/cluster", auth)
		return strings.Contains(body, brokerHTTP) && strings.Contains(body, delayHTTP) && !strings.Contains(body, "HTTP port unknown"), body
	})
	_, body, _ := get(t, base+"/delay", auth)
	if !strings.Contains(body, `<table class="delay-subjects" data-group="consul_delay">`) || !strings.Contains(body, "from DELAY_MASTER "+delayHTTP) {
		t.Errorf("the delay page did not read consul_delay's /subjects at %s:\n%s", delayHTTP, body)
	}
}
