package delay

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
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
	// The console finds /health and /subjects through it.
	if want := strconv.Itoa(d.srv.HTTPAddr().(*net.TCPAddr).Port); e.Service.Meta["http_port"] != want {
		t.Errorf("meta %v: http_port should be delay.http.port %s", e.Service.Meta, want)
	}
	d.stop()
	all, _, err := c.Health().Service("qmq-delay", "", false, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("after shutdown qmq-delay should be deregistered: %v, %d instances", err, len(all))
	}
}

// TestConsulRegistrationSlave: the slave of a pair is listed too, as
// role:delay_slave, under an ID of its address alone — so a former master
// that rejoins as slave replaces its own "delay_master" entry instead of
// leaving two masters listed (a whole-bundle run on Nomad showed that).
func TestConsulRegistrationSlave(t *testing.T) {
	agent := consultest.Agent(t)
	m := startMeta(t)
	withConsul := func(s *Settings) { s.ConsulAddress, s.AdvertiseIP = agent.HTTPAddr, "127.0.0.1" }
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), withConsul)
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), withConsul)
	master.waitOnline()
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{master.port: "role:delay_master", slave.port: "role:delay_slave"}
	testutil.EventuallyState(t, 30*time.Second, "master and slave passing in consul with their roles", func() (bool, string) {
		entries, _, err := c.Health().Service("qmq-delay", "", true, nil)
		if err != nil {
			return false, err.Error()
		}
		got := map[int][]string{}
		for _, e := range entries {
			got[e.Service.Port] = e.Service.Tags
		}
		for port, tag := range want {
			if !slices.Contains(got[port], tag) {
				return false, fmt.Sprintf("entries by port: %v", got)
			}
		}
		return len(entries) == 2, fmt.Sprintf("entries by port: %v", got)
	})
}
