package watchdog

import (
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
)

func TestMain(m *testing.M) {
	os.Exit(consultest.Main(m))
}

// With consul.address set, a watchdog registers in a real Consul agent as
// qmq-watchdog, tagged with its namespace, with a passing HTTP check on
// /health, and leaves at shutdown.
func TestConsulRegistration(t *testing.T) {
	agent := consultest.Agent(t)
	e := startEnv(t)
	s := e.settings()
	s.ConsulAddress = agent.HTTPAddr
	w := e.start(t, "wd-consul", s)
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var entries []*api.ServiceEntry
	testutil.Eventually(t, 30*time.Second, "qmq-watchdog passing in consul", func() bool {
		entries, _, err = c.Health().Service("qmq-watchdog", "", true, nil)
		return err == nil && len(entries) == 1
	})
	if got := entries[0].Service; got.Port != w.HTTPAddr().(*net.TCPAddr).Port || !slices.Contains(got.Tags, "namespace:default") {
		t.Errorf("registered %s:%d tags %v", got.Address, got.Port, got.Tags)
	}
	w.stop(t)
	all, _, err := c.Health().Service("qmq-watchdog", "", false, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("after shutdown qmq-watchdog should be deregistered: %v, %d instances", err, len(all))
	}
}
