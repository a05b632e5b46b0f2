package delay

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/faultproxy"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// supervisor restarts a server after its Run returns, as a process
// supervisor would, and keeps what each exit said.
type supervisor struct {
	mu    sync.Mutex
	exits []string
}

func (sv *supervisor) said(s string) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, e := range sv.exits {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// restartOnExit waits for h's Run to end and starts it again (role: none,
// the registration stays).
func (sv *supervisor) restartOnExit(t *testing.T, h *delayHarness, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-h.done:
		msg := "<nil>"
		if err != nil {
			msg = err.Error()
		}
		sv.mu.Lock()
		sv.exits = append(sv.exits, msg)
		sv.mu.Unlock()
		t.Logf("%s exited: %s", h.hostname, msg)
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", h.hostname, timeout)
	}
	h.cancel()
	h.cancel = nil
	h.start(-1)
}

// TestDelayLiveMasterPartitioned: a live master with wait.slave.wrote and
// the lease is cut off from its slave and the metaserver (fault proxies:
// silence, no reset) while a producer keeps sending to it. It stores the
// sends it cannot replicate and answers them BROKER_BUSY, fences itself
// when its lease runs out; the slave takes over at its own log ends. When
// the network heals, the old master learns it lost the group, cuts the
// tail past the takeover point on its way out, is started again as slave
// and copies the new master: its logs end byte-identical to the new
// master's. Every acknowledged message is delivered; none of the refused
// ones is delivered twice; duplicates are at most the one dispatch batch
// whose records the slave may not have confirmed (dispatchgate.go): the
// partitioned master stops dispatching once its slave stops confirming.
func TestDelayLiveMasterPartitioned(t *testing.T) {
	if testing.Short() {
		t.Skip("failover e2e")
	}
	m := startMeta(t)
	startBroker(t, m)
	const subject = "delay.repl.split"
	col := consume(t, m.Endpoint(), subject)
	lease := func(s *Settings) {
		waitSlave(s)
		s.SlaveWroteTimeout = time.Second
		s.Failover = FailoverSettings{Enable: true, LeaseTTL: 1500 * time.Millisecond, MasterTimeout: 500 * time.Millisecond}
	}

	// The master's sync port as registered is a proxy (the slave dials it),
	// and it reaches the metaserver through another.
	ports := testutil.FreePorts(t, 2)
	syncProxy := faultproxy.New(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
	metaProxy := faultproxy.New(t, m.TCP())
	m.AddBrokerPorts(delayGroup, int(protocol.RoleDelayMaster), delayHost, ports[0], syncProxy.Port())
	master := &delayHarness{t: t, meta: m, root: filepath.Join(t.TempDir(), delayHost), port: ports[0], hostname: delayHost,
		settings: func(s *Settings) {
			s.MetaEndpoint = metaProxy.Addr()
			s.SyncPort = ports[1]
			s.SyncSecret = testSecret
			s.Replication.SlaveSyncTimeout = time.Second
			lease(s)
		}}
	master.start(-1)
	t.Cleanup(master.stop)
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), lease)
	master.waitOnline()
	testutil.Eventually(t, 10*time.Second, "the master's slave", func() bool {
		return master.srv.replica.Load().master.Lag().MessageOffset >= 0
	})

	// The producer: batches of 10 due 2 s after sending, to whoever the
	// test says is the master.
	var (
		mu               sync.Mutex
		target           = master.srv.Addr().String()
		acked, refused   []string
		unanswered, sent int
	)
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(20 * time.Millisecond):
			}
			mu.Lock()
			addr := target
			mu.Unlock()
			var batch []protocol.Message
			due := time.Now().Add(2 * time.Second).UnixMilli()
			for j := range 10 {
				batch = append(batch, delayMessage(subject, fmt.Sprintf("%s-%05d-%d", subject, i, j), due))
			}
			rs, err := trySend(addr, batch)
			mu.Lock()
			sent += len(batch)
			if err != nil {
				unanswered += len(batch)
				for _, msg := range batch {
					refused = append(refused, msg.MessageID) // the outcome is unknown: not acknowledged
				}
			} else {
				failed := map[string]bool{}
				for _, r := range rs {
					failed[r.MessageID] = true
				}
				for _, msg := range batch {
					if failed[msg.MessageID] {
						refused = append(refused, msg.MessageID)
					} else {
						acked = append(acked, msg.MessageID)
					}
				}
			}
			mu.Unlock()
		}
	})
	defer func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		load.Wait()
	}()
	time.Sleep(4 * time.Second) // dispatches too
	endsBefore := logEnds(master)

	metaProxy.Partition()
	syncProxy.Partition()
	cut := time.Now()
	var sv supervisor
	// The slave takes over and exits to be started as the master.
	sv.restartOnExit(t, slave, 20*time.Second)
	took := time.Since(cut)
	if !sv.said("this slave took over") {
		t.Fatalf("the slave exited without taking over: %v", sv.exits)
	}
	slave.waitOnline()
	online := time.Since(cut)
	mu.Lock()
	target = slave.srv.Addr().String()
	ackedBefore := len(acked)
	mu.Unlock()
	takeover := logEnds(slave)
	oldEnds := logEnds(master)
	t.Logf("partitioned at 0; slave took over at +%v, online as master at +%v; takeover point %v, the partitioned master's ends %v (before the partition %v)",
		took.Round(time.Millisecond), online.Round(time.Millisecond), takeover, oldEnds, endsBefore)
	time.Sleep(time.Second) // sends to the new master

	// Heal: the old master learns it lost the group, cuts its tail on the
	// way out (the metaserver has the takeover point) and stops; started
	// again as slave it copies.
	healed := time.Now()
	metaProxy.Heal()
	syncProxy.Heal()
	sv.restartOnExit(t, master, 20*time.Second)
	if !sv.said("lost its lease") && !sv.said("now registers this delay server") {
		t.Fatalf("the old master exited without saying it lost the group: %v", sv.exits)
	}
	if oldEnds[0] > takeover[0] || oldEnds[1] > takeover[1] {
		if !sv.said("was never replicated and is cut") || !strings.Contains(master.logs.String(), "cut the tail this former master never replicated") {
			t.Fatalf("the old master's logs went past the takeover point but it did not cut them on its way out: %v", sv.exits)
		}
		t.Logf("the old master cut its tail: %s", lastLine(master.logs.String(), "cut the tail"))
	}
	testutil.Eventually(t, 30*time.Second, "the old master to catch up with the new one", func() bool {
		return strings.Contains(master.logs.String(), "caught up with the master")
	})
	rejoined := time.Since(healed)

	close(stopLoad)
	load.Wait()
	mu.Lock()
	ids := append([]string(nil), acked...)
	refusedIDs := append([]string(nil), refused...)
	mu.Unlock()
	col.waitFor(t, 60*time.Second, ids...)
	testutil.Eventually(t, 30*time.Second, "the rejoined slave's logs to end where the master's do", func() bool {
		return logEnds(master) == logEnds(slave)
	})
	files := sameDir(t, slave.root, master.root, "message_log") + sameDir(t, slave.root, master.root, "dispatch_log")

	time.Sleep(3 * time.Second) // late duplicates
	col.mu.Lock()
	dups, refusedDelivered, refusedTwice := 0, 0, 0
	for _, id := range ids {
		dups += col.count[id] - 1
	}
	for _, id := range refusedIDs {
		if n := col.count[id]; n > 0 {
			refusedDelivered++
			if n > 1 {
				refusedTwice++
			}
		}
	}
	col.mu.Unlock()
	t.Logf("%d sent, %d acknowledged (%d before the takeover), %d refused or unanswered (%d unanswered); all acknowledged delivered; "+
		"duplicates of acknowledged: %d; refused delivered: %d (twice: %d); heal to caught up: %v; %d log files byte-identical",
		sent, len(ids), ackedBefore, len(refusedIDs), unanswered, dups, refusedDelivered, refusedTwice, rejoined.Round(time.Millisecond), files)
	if refusedTwice > 0 {
		t.Fatalf("%d refused messages delivered twice", refusedTwice)
	}
	if bound := DefaultSettings().Dispatch.BatchSize; dups > bound {
		t.Errorf("%d acknowledged messages delivered twice: more than the %d (one dispatch batch) the slave gate allows", dups, bound)
	}
	if len(ids) < 200 {
		t.Errorf("only %d messages acknowledged: the load did not run", len(ids))
	}
}
