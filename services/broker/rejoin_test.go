package broker

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/faultproxy"
	"github.com/qmq-go/qmq/internal/testutil"
)

// TestRejoinBuildsFreshInstance: an in-process master A that loses its group
// (partitioned from the metaserver and its slave B, which takes over) rejoins
// as B's slave inside the same process. The rejoin builds a fresh instance;
// the Server's accessors, read all along from another goroutine, never race
// with it (go test -race), keep the configured port, and come back with the
// new instance's registry.
func TestRejoinBuildsFreshInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test")
	}
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	syncProxy := faultproxy.New(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p[1])))
	metaProxy := faultproxy.New(t, m.TCP())
	sets := failoverSets(true)
	keys := "broker.http.port=0\nmeta.retry.interval.ms=100\nbroker.heartbeat.interval.ms=200\nmessage.retry.delay.seconds=0\nbroker.advertise.ip=127.0.0.1\n"

	// A listens for its slave on p[1] but is registered with the proxy's port.
	m.AddBrokerPorts("g1", 0, "rj-a", p[0], syncProxy.Port())
	aDir := t.TempDir()
	a := &brokerHarness{t: t, meta: m, dir: aDir, root: aDir + "/store", hostname: "rj-a", group: "g1", port: p[0],
		base: "meta.server.endpoint=" + metaProxy.Addr() + "\n" + keys, sets: append([]string{"sync.port=" + strconv.Itoa(p[1])}, sets...)}
	t.Cleanup(a.stop)
	b := pairMember(t, m, "rj-b", 1, p[2], p[3], sets...)
	a.start(false, true)
	b.start(false, false)
	testutil.Eventually(t, 20*time.Second, "slave caught up", func() bool { return strings.Contains(b.logs.String(), "caught up with the master") })

	firstRegistry := a.srv.Registry()
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			_ = a.srv.Addr()
			if a.srv.Port() != p[0] {
				t.Errorf("Port() = %d during the rejoin, want %d", a.srv.Port(), p[0])
				return
			}
			_ = a.srv.HTTPAddr()
			_ = a.srv.Registry()
			_ = a.srv.Group()
			_ = a.srv.Online()
			reads.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	metaProxy.Partition()
	syncProxy.Partition()
	testutil.Eventually(t, 20*time.Second, "the slave took over", func() bool { return strings.Contains(b.logs.String(), "this slave took over as the group's master") })
	metaProxy.Heal()
	syncProxy.Heal()
	testutil.Eventually(t, 30*time.Second, "the old master rejoined as a slave", func() bool { return strings.Contains(a.logs.String(), "rejoining the group as its slave") })
	testutil.Eventually(t, 30*time.Second, "the old master caught up as a slave", func() bool {
		return a.srv.Registry() != firstRegistry && a.srv.inst().replica.Load() != nil && strings.Contains(a.logs.String(), "caught up with the master")
	})
	stop.Store(true)
	wg.Wait()
	if a.srv.Port() != p[0] || a.srv.Group() != "g1" {
		t.Fatalf("after the rejoin: port %d group %q, want %d g1", a.srv.Port(), a.srv.Group(), p[0])
	}
	t.Logf("%d accessor reads during the rejoin", reads.Load())
}
