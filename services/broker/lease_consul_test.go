package broker

// The Consul master lease (lease_consul.go) against a real Consul agent
// (consultest), with the subprocess brokers of failover_e2e_test.go.

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/faultproxy"
	"github.com/qmq-go/qmq/internal/testutil"
)

// consulLeaseSets are g1's keys for the Consul lease at agentAddr: Consul's
// smallest session TTL, a short lock-delay.
func consulLeaseSets(t *testing.T, agentAddr string) []string {
	return []string{"consul.address=" + agentAddr, "failover.consul.session.ttl.ms=10000", "failover.consul.lock.delay.ms=500",
		"failover.consul.key.prefix=" + testKeyPrefix(t)}
}

// testKeyPrefix keeps each test's locks apart in the shared agent (a
// killed broker's lease check and session hold its lock for a while).
func testKeyPrefix(t *testing.T) string { return "qmq-test/" + t.Name() + "/" }

func consulKV(t *testing.T, agentAddr string) *api.KV {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = agentAddr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.KV()
}

// lockHolder reads the group's lock: its value and whether a session holds it.
func lockHolder(t *testing.T, kv *api.KV, group string) (consulHolder, string) {
	t.Helper()
	p, _, err := kv.Get(consulLeaseKey(testKeyPrefix(t), group), nil)
	if err != nil {
		t.Fatalf("read the consul lock: %v", err)
	}
	if p == nil {
		return consulHolder{}, ""
	}
	var h consulHolder
	if err := json.Unmarshal(p.Value, &h); err != nil {
		t.Fatalf("consul lock value %q: %v", p.Value, err)
	}
	return h, p.Session
}

// TestConsulLeaseKillMaster: with consul.address set, master A holds the
// Consul lock qmq/broker/g1/master (its address and term in the value); A
// is killed with SIGKILL under load; its session expires, slave B takes the
// lock and is promoted (the metaserver records the term and swaps the
// roles); every acknowledged message is consumed; A returns and rejoins as
// B's slave with identical logs.
func TestConsulLeaseKillMaster(t *testing.T) {
	agent := consultest.Agent(t)
	kv := consulKV(t, agent.HTTPAddr)
	var sessionA string
	runFailoverWith(t, failoverRun{
		auto: true, seed: uint64(time.Now().UnixNano()), sets: consulLeaseSets(t, agent.HTTPAddr), promoteWait: 45 * time.Second,
		beforeKill: func(a, b *procBroker) {
			a.waitLog("consul lock acquired", time.Second)
			h, session := lockHolder(t, kv, "g1")
			if session == "" || h.Address != net.JoinHostPort("127.0.0.1", strconv.Itoa(a.port)) || h.Epoch < 1 {
				t.Fatalf("consul lock: session %q value %+v; want held by the master 127.0.0.1:%d with its term", session, h, a.port)
			}
			sessionA = session
			t.Logf("master A holds %s: %+v", consulLeaseKey(testKeyPrefix(t), "g1"), h)
		},
	})
	h, session := lockHolder(t, kv, "g1")
	if session == "" || session == sessionA || h.Holder != "fo-b:"+strconv.Itoa(portOfHolder(t, h)) {
		t.Fatalf("after the failover the consul lock is session %q (A's was %q), value %+v; want B's", session, sessionA, h)
	}
	t.Logf("after the failover: %+v", h)
}

func portOfHolder(t *testing.T, h consulHolder) int {
	_, p, err := net.SplitHostPort(h.Address)
	if err != nil {
		t.Fatalf("lock value address %q: %v", h.Address, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestConsulLeaseMasterCutOffFromConsul: master A stays up and keeps its
// metaserver link but loses the Consul agent (a proxy between A and the
// agent's HTTP port swallows traffic) and its slave. A stops acknowledging
// (fencing) before B can take the lock; B takes over once A's session has
// expired; healed, A rejoins as B's slave, cutting its unreplicated tail.
func TestConsulLeaseMasterCutOffFromConsul(t *testing.T) {
	agent := consultest.Agent(t)
	kv := consulKV(t, agent.HTTPAddr)
	m := startMeta(t)
	ports := testutil.FreePorts(t, 6)
	syncProxy := faultproxy.New(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
	consulProxy := faultproxy.New(t, agent.HTTPAddr)
	sets := append(failoverSets(true), "slave.message.lag.mark_readonly=true", "slave.message.lag.time.max.seconds=1")
	a := newProcBrokerVia(t, m, procNet{registeredSync: syncProxy.Port()}, "g1", "cl-a", 0, ports[0], ports[1], append(sets, consulLeaseSets(t, consulProxy.Addr())...)...)
	b := newProcBroker(t, m, "g1", "cl-b", 1, ports[2], ports[3], append(sets, consulLeaseSets(t, agent.HTTPAddr)...)...)
	c := newProcBroker(t, m, "g2", "cl-c", 0, ports[4], ports[5])
	a.start()
	b.start()
	c.start()
	a.waitLog("broker online", 20*time.Second)
	a.waitLog("consul lock acquired", time.Second)
	c.waitLog("broker online", 20*time.Second)
	b.waitLog("caught up with the master", 20*time.Second)

	subject := "consul.split"
	load := startFaultLoad(t, m, subject)
	load.more(100, "before the partition")

	consulProxy.Partition()
	syncProxy.Partition()
	cut := time.Now()
	probe := startFenceProbe(t, a.port, subject, cut.Add(time.Second)) // sends in flight at the cut may still land
	var (
		mu        sync.Mutex
		lockTaken time.Time
	)
	pctx, stopProbes := context.WithCancel(context.Background())
	defer stopProbes()
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { // the moment the lock changes hands, seen from the agent
		defer pwg.Done()
		first := ""
		for backoff.Sleep(pctx, 20*time.Millisecond) == nil {
			p, _, err := kv.Get(consulLeaseKey(testKeyPrefix(t), "g1"), nil)
			if err != nil || p == nil {
				continue
			}
			if first == "" {
				first = p.Session
			}
			if p.Session != "" && p.Session != first {
				mu.Lock()
				lockTaken = time.Now()
				mu.Unlock()
				return
			}
		}
	}()
	b.waitLog("this slave took over as the group's master", 60*time.Second)
	took := logTime(t, b, "this slave took over as the group's master")
	testutil.Eventually(t, 10*time.Second, "the cut-off master refuses sends (fencing)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return probe.fenced() && !lockTaken.IsZero()
	})
	stopProbes()
	pwg.Wait()
	fencedAt, ackedAfter, remark := probe.stop()
	t.Logf("cut at 0: old master fenced at +%v (%q), B's session took the lock at +%v, B took over at +%v",
		fencedAt.Sub(cut).Round(time.Millisecond), remark, lockTaken.Sub(cut).Round(time.Millisecond), took.Sub(cut).Round(time.Millisecond))
	if !fencedAt.Before(lockTaken) || !fencedAt.Before(took) {
		t.Fatalf("the old master still took sends at %v, after B took the consul lock at %v", fencedAt, lockTaken)
	}
	if ackedAfter > 0 {
		t.Fatalf("the master cut off from consul acknowledged %d sends more than 1 s after the cut", ackedAfter)
	}
	if h, session := lockHolder(t, kv, "g1"); session == "" || h.Address != net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) {
		t.Fatalf("consul lock after the takeover: session %q value %+v; want B (port %d)", session, h, b.port)
	}
	b.waitLog("broker online", 20*time.Second)
	load.more(50, "after the promotion")

	consulProxy.Heal()
	syncProxy.Heal()
	a.waitLog("caught up with the master", 90*time.Second) // copying what B took under load meanwhile
	load.more(50, "after the old master rejoined")
	n := load.finish()
	sameLogs(t, b.root(), a.root(), 30*time.Second)
	t.Logf("%d acknowledged sends all consumed; the old master rejoined and its logs are identical", n)
}
