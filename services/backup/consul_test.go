package backup

import (
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(consultest.Main(m)) }

// With consul.address set, a following backup registers in a real Consul
// agent as qmq-backup tagged group:<group>, its /health check passing, and
// leaves at shutdown.
func TestConsulRegistration(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	agent := consultest.Agent(t)
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	s.ConsulAddress = agent.HTTPAddr
	b := startBackup(t, s, host, newMemStore())
	b.waitHealthy("")
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	cc, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var entries []*api.ServiceEntry
	testutil.Eventually(t, 30*time.Second, "qmq-backup passing in consul", func() bool {
		entries, _, err = cc.Health().Service("qmq-backup", "", true, nil)
		return err == nil && len(entries) == 1
	})
	if e := entries[0]; !slices.Contains(e.Service.Tags, "group:g1") || e.Service.Port != b.srv.HTTPAddr().(*net.TCPAddr).Port {
		t.Errorf("registration %+v: want tag group:g1 and the HTTP port", e.Service)
	}
	b.stop()
	all, _, err := cc.Health().Service("qmq-backup", "", false, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("after shutdown qmq-backup should be deregistered: %v, %d instances", err, len(all))
	}
}

// A backup degraded longer than consul.deregister.critical.after.ms is
// removed by the agent; once it is ok again it registers again. The agent's
// reaper (a minute at least, then up to 30 s) is stood in for by removing
// the service through the agent's API while the backup is degraded.
func TestConsulRegistersAgainAfterRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	agent := consultest.Agent(t)
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	s.ConsulAddress = agent.HTTPAddr
	store := newMemStore()
	b := startBackup(t, s, host, store)
	b.waitHealthy("")
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	cc, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	passing := func() []*api.ServiceEntry {
		entries, _, err := cc.Health().Service("qmq-backup", "", true, nil)
		if err != nil {
			return nil
		}
		return entries
	}
	testutil.Eventually(t, 30*time.Second, "qmq-backup passing in consul", func() bool { return len(passing()) == 1 })
	id := passing()[0].Service.ID

	store.fail.Store(true)
	send(t, newProducer(t, c), "backup.consul", 5, nil)
	b.waitDegraded("store: writes fail")
	if err := cc.Agent().ServiceDeregister(id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * s.MetaRefresh) // refreshes while degraded: no registration yet
	if all, _, err := cc.Health().Service("qmq-backup", "", false, nil); err != nil || len(all) != 0 {
		t.Fatalf("registered again while still degraded: %v, %d instances", err, len(all))
	}
	store.fail.Store(false)
	b.waitHealthy("")
	testutil.Eventually(t, 30*time.Second, "qmq-backup registered and passing again once ok", func() bool {
		e := passing()
		return len(e) == 1 && e[0].Service.ID == id
	})
}
