package broker

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
)

func TestMain(m *testing.M) {
	if os.Getenv(failoverHelperEnv) != "" {
		os.Exit(failoverHelper()) // a broker subprocess of failover_e2e_test.go
	}
	os.Exit(consultest.Main(m))
}

// With consul.address set, an online broker registers in a real Consul
// agent as qmq-broker (or consul.service.name), tagged with its group and
// role, with a passing TCP check on broker.port, and leaves at shutdown.
func TestConsulRegistration(t *testing.T) {
	agent := consultest.Agent(t)
	m := startMeta(t)
	b1 := startBroker(t, m, true, "consul.address="+agent.HTTPAddr, "broker.advertise.ip=127.0.0.1")
	b2 := startBrokerAs(t, m, "g2", "broker-test-host-2", true, "consul.address="+agent.HTTPAddr, "broker.advertise.ip=127.0.0.1",
		"consul.service.name=qmq-broker-custom")
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	passing := func(service string) []*api.ServiceEntry {
		entries, _, err := client.Health().Service(service, "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		return entries
	}
	var entries []*api.ServiceEntry
	eventually(t, 30*time.Second, "qmq-broker passing in consul", func() bool {
		entries = passing("qmq-broker")
		return len(entries) == 1
	})
	e := entries[0]
	if e.Service.Port != b1.port || e.Service.Address != "127.0.0.1" {
		t.Fatalf("registered at %s:%d, want 127.0.0.1:%d", e.Service.Address, e.Service.Port, b1.port)
	}
	for _, tag := range []string{"group:g1", "role:master"} {
		if !slices.Contains(e.Service.Tags, tag) {
			t.Fatalf("tags %v lack %s", e.Service.Tags, tag)
		}
	}
	var tcp bool
	for _, c := range e.Checks {
		if c.Type == "tcp" && c.Status == api.HealthPassing {
			tcp = true
		}
	}
	if !tcp {
		t.Fatalf("no passing TCP check among %+v", e.Checks)
	}
	eventually(t, 30*time.Second, "qmq-broker-custom passing in consul", func() bool {
		entries = passing("qmq-broker-custom")
		return len(entries) == 1 && slices.Contains(entries[0].Service.Tags, "group:g2") && entries[0].Service.Port == b2.port
	})

	b1.stop()
	all, _, err := client.Health().Service("qmq-broker", "", false, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("after shutdown qmq-broker should be deregistered: %v, %d instances", err, len(all))
	}
	if got := fmt.Sprint(len(passing("qmq-broker-custom"))); got != "1" {
		t.Fatalf("the other broker left too: %s instances", got)
	}
}

// An unreachable Consul agent does not stop the broker: one error, retries.
func TestConsulUnreachable(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "consul.address=127.0.0.1:1")
	b.dial().mustSend(msg("s", "m1"))
	time.Sleep(700 * time.Millisecond) // a few heartbeats, each retrying
	if n := strings.Count(b.logs.String(), "consul registration failed"); n != 1 {
		t.Fatalf("%d consul errors logged, want 1:\n%s", n, b.logs.String())
	}
}
