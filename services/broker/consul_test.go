package broker

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
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
	testutil.Eventually(t, 30*time.Second, "qmq-broker passing in consul", func() bool {
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
	// The console finds /health and /consumers through it.
	if want := strconv.Itoa(b1.srv.HTTPAddr().(*net.TCPAddr).Port); e.Service.Meta["http_port"] != want {
		t.Fatalf("meta %v: http_port should be broker.http.port %s", e.Service.Meta, want)
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
	testutil.Eventually(t, 30*time.Second, "qmq-broker-custom passing in consul", func() bool {
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

// TestConsulTagsFollowRole: a master without a caught-up slave is tagged
// readonly (its lagging slave makes the group read-only), and no longer once
// the slave has caught up; when the master stops, the promoted slave's
// registration says role:master, updated in place: its service never leaves
// the agent. Both registrations carry consul.deregister.critical.after.ms.
func TestConsulTagsFollowRole(t *testing.T) {
	agent := consultest.Agent(t)
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	rec := consultest.NewRecorder(t, agent.HTTPAddr)
	sets := append(failoverSets(true), append(consulLeaseSets(t, rec.Addr), "broker.advertise.ip=127.0.0.1",
		"slave.message.lag.mark_readonly=true", "slave.message.lag.time.max.seconds=1", "consul.deregister.critical.after.ms=60000")...)
	master := pairMember(t, m, "tags-master", 0, p[0], p[1], sets...)
	slave := pairMember(t, m, "tags-slave", 1, p[2], p[3], sets...)
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	masterID := fmt.Sprintf("qmq-broker-127.0.0.1-%d", p[0])
	slaveID := fmt.Sprintf("qmq-broker-127.0.0.1-%d", p[2])
	tags := func(id string) []string {
		s, _, err := client.Agent().Service(id, nil)
		if err != nil {
			return nil
		}
		return s.Tags
	}
	has := func(id string, want ...string) bool {
		got := tags(id)
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return got != nil
	}

	master.start(false, true)
	testutil.Eventually(t, 15*time.Second, "the master tagged role:master and readonly while no slave has caught up", func() bool {
		return has(masterID, "group:g1", "role:master", "readonly")
	})
	slave.start(false, false)
	testutil.Eventually(t, 20*time.Second, "the slave registered role:slave, the master writable again", func() bool {
		return has(slaveID, "role:slave") && has(masterID, "role:master") && !slices.Contains(tags(masterID), "readonly")
	})
	// Every registration, the lease's qmq-lock check included, as the agent
	// received it (no endpoint shows DeregisterCriticalServiceAfter again).
	n := 0
	for _, reg := range rec.Registrations("") {
		for _, ch := range consultest.Checks([]api.AgentServiceRegistration{reg}) {
			n++
			if ch.DeregisterCriticalServiceAfter != "1m0s" {
				t.Errorf("%s registered with check %+v; want DeregisterCriticalServiceAfter 1m0s", reg.ID, ch)
			}
		}
	}
	if n < 3 { // both brokers' TCP checks and the master's lease check
		t.Errorf("%d checks registered, want at least 3: %+v", n, rec.Registrations(""))
	}

	// Watch the slave's registration through the promotion.
	var missing atomic.Int32
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if _, _, err := client.Agent().Service(slaveID, nil); err != nil {
				missing.Add(1)
			}
		}
	}()
	master.stop()
	testutil.Eventually(t, 30*time.Second, "the promoted slave tagged role:master", func() bool {
		return has(slaveID, "role:master") && !slices.Contains(tags(slaveID), "role:slave")
	})
	close(stop)
	<-watched
	if n := missing.Load(); n != 0 {
		t.Errorf("the promoted slave's registration was missing from the agent %d times during the promotion; want it updated in place", n)
	}
}
