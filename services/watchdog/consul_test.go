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
	// Other tests' watchdogs register in the same agent: look at this one's.
	const id = "qmq-watchdog-wd-consul"
	mine := func(passingOnly bool) []*api.ServiceEntry {
		entries, _, err := c.Health().Service("qmq-watchdog", "", passingOnly, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []*api.ServiceEntry
		for _, e := range entries {
			if e.Service.ID == id {
				out = append(out, e)
			}
		}
		return out
	}
	var entries []*api.ServiceEntry
	testutil.Eventually(t, 30*time.Second, "qmq-watchdog passing in consul", func() bool {
		entries = mine(true)
		return len(entries) == 1
	})
	if got := entries[0].Service; got.Port != w.HTTPAddr().(*net.TCPAddr).Port || !slices.Contains(got.Tags, "namespace:default") {
		t.Errorf("registered %s:%d tags %v", got.Address, got.Port, got.Tags)
	}
	w.stop(t)
	if n := len(mine(false)); n != 0 {
		t.Fatalf("after shutdown %s should be deregistered: %d instances", id, n)
	}
}
