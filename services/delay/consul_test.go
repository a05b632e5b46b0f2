package delay

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv(procHelperEnv) != "" {
		os.Exit(procHelper()) // a delay server subprocess of kill9_test.go
	}
	os.Exit(consultest.Main(m))
}

// With consul.address set, an online delay server registers in a real
// Consul agent as qmq-delay, tagged with its group and role, with a passing
// TCP check on broker.port, and leaves at shutdown.
func TestConsulRegistration(t *testing.T) {
	agent := consultest.Agent(t)
	m := startMeta(t)
	d := startDelay(t, m, func(s *Settings) { s.ConsulAddress, s.AdvertiseIP = agent.HTTPAddr, "127.0.0.1" })
	d.waitOnline()
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var entries []*api.ServiceEntry
	testutil.Eventually(t, 30*time.Second, "qmq-delay passing in consul", func() bool {
		entries, _, err = c.Health().Service("qmq-delay", "", true, nil)
		return err == nil && len(entries) == 1
	})
	e := entries[0]
	if e.Service.Port != d.port || e.Service.Address != "127.0.0.1" {
		t.Errorf("registered at %s:%d, want 127.0.0.1:%d", e.Service.Address, e.Service.Port, d.port)
	}
	for _, tag := range []string{"group:" + delayGroup, "role:delay_master"} {
		if !slices.Contains(e.Service.Tags, tag) {
			t.Errorf("tags %v lack %s", e.Service.Tags, tag)
		}
	}
	d.stop()
	all, _, err := c.Health().Service("qmq-delay", "", false, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("after shutdown qmq-delay should be deregistered: %v, %d instances", err, len(all))
	}
}
