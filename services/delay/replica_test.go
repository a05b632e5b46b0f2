package delay

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// The delay group's master/slave pair: two delay servers, registered as
// DELAY_MASTER (5) and DELAY_SLAVE (6) of delay1 on free ports, replicating
// over real sockets.

const slaveHost = "delay-test-slave"

var testSecret = syncauth.NewSecret([]byte("delay-group-secret-for-tests"))

// pairMember is a delay server of the pair, registered on fixed ports.
func pairMember(t *testing.T, m *metatest.Server, host string, role int, change func(*Settings)) *delayHarness {
	t.Helper()
	ports := testutil.FreePorts(t, 2)
	m.AddBrokerPorts(delayGroup, role, host, ports[0], ports[1])
	h := &delayHarness{t: t, meta: m, root: filepath.Join(t.TempDir(), host), port: ports[0], hostname: host,
		settings: func(s *Settings) {
			s.SyncPort = ports[1]
			s.SyncSecret = testSecret
			s.Replication.SlaveSyncTimeout = time.Second
			if change != nil {
				change(s)
			}
		}}
	h.start(-1)
	t.Cleanup(h.stop)
	return h
}

func waitSlave(s *Settings) {
	s.WaitSlaveWrote = true
	s.SlaveWroteTimeout = 3 * time.Second
}

// logEnds are a server's replicated log ends.
func logEnds(h *delayHarness) [2]int64 {
	return [2]int64{h.srv.ds.LogEnd(delaystore.MessageLog), h.srv.ds.LogEnd(delaystore.DispatchLog)}
}

// sameDir fails unless every file of dir under a's root equals b's.
func sameDir(t *testing.T, a, b, dir string) int {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(a, dir))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadDir(filepath.Join(b, dir))
	if len(other) != len(names) {
		t.Fatalf("%s: master has %d files, slave %d", dir, len(names), len(other))
	}
	for _, n := range names {
		x, err := os.ReadFile(filepath.Join(a, dir, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, dir, n.Name()))
		if err != nil {
			t.Fatalf("%s/%s: the slave lacks it: %v", dir, n.Name(), err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("%s/%s differs between master and slave", dir, n.Name())
		}
	}
	return len(names)
}

// sendBatches sends n delay messages in batches of 20 to addr, due at
// due(i), and returns the ids the server acknowledged and those it refused.
func sendBatches(t *testing.T, addr, subject string, n int, due func(i int) time.Time) (acked, refused []string) {
	t.Helper()
	for i := 0; i < n; i += 20 {
		var batch []protocol.Message
		for j := i; j < min(i+20, n); j++ {
			batch = append(batch, delayMessage(subject, fmt.Sprintf("%s-%05d", subject, j), due(j).UnixMilli()))
		}
		_, rs := rawSend(t, addr, batch...)
		failed := map[string]bool{}
		for _, r := range rs {
			failed[r.MessageID] = true
		}
		for _, m := range batch {
			if failed[m.MessageID] {
				refused = append(refused, m.MessageID)
			} else {
				acked = append(acked, m.MessageID)
			}
		}
	}
	return acked, refused
}

// TestDelayReplicationByteIdentical: with wait.slave.wrote, every
// acknowledged send is on the slave; after a load with dispatches the
// slave's message log and dispatch log are byte-identical to the master's,
// the slave neither takes sends nor dispatches, and /health shows both
// sides.
func TestDelayReplicationByteIdentical(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	const subject = "delay.repl.copy"
	col := consume(t, m.Endpoint(), subject)
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), waitSlave)
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), nil)
	master.waitOnline()
	testutil.Eventually(t, 10*time.Second, "the slave to replicate", func() bool {
		r := slave.srv.replica.Load()
		return r != nil && r.slave != nil && r.slave.Status().Connected
	})

	now := time.Now()
	const n = 400
	// A quarter due within seconds (dispatched, so the dispatch log grows),
	// the rest in an hour.
	acked, refused := sendBatches(t, master.srv.Addr().String(), subject, n, func(i int) time.Time {
		if i%4 == 0 {
			return now.Add(time.Second + time.Duration(i)*5*time.Millisecond)
		}
		return now.Add(time.Hour)
	})
	if len(refused) != 0 {
		t.Fatalf("%d sends refused with wait.slave.wrote and a live slave", len(refused))
	}
	var soon []string
	for i := 0; i < n; i += 4 {
		soon = append(soon, fmt.Sprintf("%s-%05d", subject, i))
	}
	col.waitFor(t, 20*time.Second, soon...)
	testutil.EventuallyState(t, 10*time.Second, "the slave's logs to reach the master's ends", func() (bool, string) {
		me, se := logEnds(master), logEnds(slave)
		return me == se && me[1] > 0, fmt.Sprintf("master %v, slave %v", me, se)
	})
	msgFiles := sameDir(t, master.root, slave.root, "message_log")
	dispFiles := sameDir(t, master.root, slave.root, "dispatch_log")
	ends := logEnds(master)
	t.Logf("%d messages acknowledged, %d dispatched; message log %d bytes (%d files), dispatch log %d bytes (%d files): byte-identical on the slave",
		len(acked), len(soon), ends[0], msgFiles, ends[1], dispFiles)

	// The slave takes no sends and dispatches nothing.
	_, rs := rawSend(t, slave.srv.Addr().String(), delayMessage(subject, "to-the-slave", time.Now().UnixMilli()))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerReadOnly {
		t.Fatalf("a send to the slave: %+v, want BROKER_READ_ONLY", rs)
	}
	if d := slave.srv.dispatched.Load(); d != 0 {
		t.Fatalf("the slave dispatched %d messages", d)
	}

	var mh, sh healthReport
	getJSON(t, "http://"+master.srv.HTTPAddr().String()+"/health", &mh)
	getJSON(t, "http://"+slave.srv.HTTPAddr().String()+"/health", &sh)
	if mh.Role != "DELAY_MASTER" || mh.Slave == nil || mh.Slave.LagBytes != 0 || !mh.Slave.WaitSlaveWrote {
		t.Errorf("master /health: %+v slave %+v", mh, mh.Slave)
	}
	if sh.Role != "DELAY_SLAVE" || sh.Master == nil || !sh.Master.Connected || !sh.Master.CaughtUp || sh.Online {
		t.Errorf("slave /health: %+v master %+v", sh, sh.Master)
	}
}

// TestDelayManualFailover: with wait.slave.wrote the master is stopped
// while acknowledged messages are pending; the group is swapped with the
// metaserver's management API (client/admin SwapMasterSlave), the slave
// stops on its own when it sees its new role, and started again on its
// copy it delivers every acknowledged message. Duplicates (messages the
// old master sent whose dispatch record had not reached the slave) are
// counted.
func TestDelayManualFailover(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	const subject = "delay.repl.failover"
	col := consume(t, m.Endpoint(), subject)
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), waitSlave)
	slave := pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), waitSlave)
	master.waitOnline()
	// The slave's row may reach the master's check after the slave's first
	// attempt (refused, retried 3 s later): send once it is copying.
	testutil.Eventually(t, 15*time.Second, "the slave copying the master", func() bool {
		return strings.Contains(slave.logs.String(), "connected to the master")
	})

	// Due from 1 s to 7 s from now: the master delivers the first part,
	// the new master the rest.
	start := time.Now()
	const n = 300
	acked, refused := sendBatches(t, master.srv.Addr().String(), subject, n, func(i int) time.Time {
		return start.Add(time.Second + time.Duration(i)*20*time.Millisecond)
	})
	if len(refused) != 0 {
		t.Fatalf("%d sends refused with a live slave", len(refused))
	}
	time.Sleep(time.Until(start.Add(3 * time.Second)))
	before := len(col.snapshot())

	stopped := time.Now()
	master.stop()
	if _, err := admin.New(m.HTTP(), metatest.Token).SwapMasterSlave(context.Background(), delayGroup); err != nil {
		t.Fatalf("SwapMasterSlave: %v", err)
	}
	// The slave sees its new role and stops, for its supervisor to start it again.
	select {
	case err := <-slave.done:
		if err == nil || !strings.Contains(err.Error(), "DELAY_MASTER") {
			t.Fatalf("the promoted slave stopped with %v; want the role change", err)
		}
		t.Logf("slave stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the slave did not notice its promotion")
	}
	slave.cancel = nil
	slave.start(-1)
	slave.waitOnline()
	online := time.Now()

	got := col.waitFor(t, 30*time.Second, acked...)
	delivered := time.Now()
	dups, extra := 0, 0
	col.mu.Lock()
	for _, id := range acked {
		dups += col.count[id] - 1
	}
	for id := range col.count {
		if !strings.HasPrefix(id, subject+"-") {
			extra++
		}
	}
	col.mu.Unlock()
	if extra != 0 {
		t.Errorf("%d unexpected messages", extra)
	}
	t.Logf("%d acknowledged; %d delivered before the master stopped; failover (stop, swap, slave notices and restarts, online) %v; all delivered %v after the stop; duplicates %d; dispatched by the new master %d",
		len(acked), before, online.Sub(stopped).Round(time.Millisecond), delivered.Sub(stopped).Round(time.Millisecond), dups, slave.srv.dispatched.Load())
	if len(got) < len(acked) {
		t.Fatalf("delivered %d of %d", len(got), len(acked))
	}
	// Duplicates are bounded by what the old master had sent but not yet
	// recorded on the slave: at most the messages in flight when it stopped.
	if dups > 60 {
		t.Errorf("%d duplicates: more than a dispatch batch or two in flight", dups)
	}
}

// TestDelaySyncRefusesStrangers: a master whose group has no DELAY_SLAVE
// row refuses a slave even with the right sync.secret; a wrong secret is
// refused too; with wait.slave.wrote and no slave, sends are answered
// BROKER_BUSY after wait.slave.wrote.timeout.ms.
func TestDelaySyncRefusesStrangers(t *testing.T) {
	m := startMeta(t)
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), func(s *Settings) {
		s.WaitSlaveWrote, s.SlaveWroteTimeout = true, 300*time.Millisecond
	})
	master.waitOnline()
	syncAddr := master.srv.replica.Load().master.Addr().String()
	for _, c := range []struct {
		name   string
		secret syncauth.Secret
		want   string
	}{
		{"unregistered", testSecret, "no DELAY_SLAVE"},
		{"forged secret", syncauth.NewSecret([]byte("not-the-secret")), "secret"},
	} {
		ts := testSettings(m, t.TempDir())
		cfg := ts.Store
		cfg.MaxMessageSize = ts.MaxMessageSize
		st, err := delaystore.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		sl, err := replication.NewSlave(replication.SlaveConfig{MasterAddr: syncAddr, Store: replStore{st}, Logs: replication.DelayLogs(),
			Secret: c.secret, Group: delayGroup, RetryInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = sl.Run(ctx) }()
		testutil.EventuallyState(t, 10*time.Second, c.name+": the refusal", func() (bool, string) {
			e := sl.Status().LastError
			return strings.Contains(e, c.want), e
		})
		t.Logf("%s: %s", c.name, sl.Status().LastError)
		if st := sl.Status(); st.MessageEnd != 0 || st.Connected {
			t.Errorf("%s: a refused slave copied %d bytes (connected %v)", c.name, st.MessageEnd, st.Connected)
		}
		cancel()
		<-done
		_ = st.Close()
	}
	_, rs := rawSend(t, master.srv.Addr().String(), delayMessage("delay.repl.busy", "busy-1", time.Now().Add(time.Hour).UnixMilli()))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerBusy || !strings.Contains(rs[0].Remark, "slave") {
		t.Fatalf("send without a slave: %+v, want BROKER_BUSY naming the slave", rs)
	}
}

// TestDelayLeaseFencing: with failover.enable, a master that cannot renew
// its lease (the metaserver is gone) stops taking sends (BROKER_BUSY) once
// the lease it last got has run out, and stops dispatching.
func TestDelayLeaseFencing(t *testing.T) {
	m := startMeta(t)
	lease := func(s *Settings) {
		waitSlave(s)
		s.Failover = FailoverSettings{Enable: true, LeaseTTL: 900 * time.Millisecond, MasterTimeout: 500 * time.Millisecond}
	}
	master := pairMember(t, m, delayHost, int(protocol.RoleDelayMaster), lease)
	pairMember(t, m, slaveHost, int(protocol.RoleDelaySlave), lease)
	master.waitOnline()
	testutil.Eventually(t, 10*time.Second, "the master's slave", func() bool {
		return master.srv.replica.Load().master.Lag().MessageOffset >= 0
	})
	if _, rs := rawSend(t, master.srv.Addr().String(), delayMessage("delay.repl.fence", "before", time.Now().Add(time.Hour).UnixMilli())); len(rs) != 0 {
		t.Fatalf("send with the lease held: %+v", rs)
	}
	m.Stop()
	start := time.Now()
	testutil.Eventually(t, 5*time.Second, "the master to fence itself", master.srv.fenced)
	fencedAfter := time.Since(start)
	_, rs := rawSend(t, master.srv.Addr().String(), delayMessage("delay.repl.fence", "after", time.Now().Add(time.Hour).UnixMilli()))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerBusy || !strings.Contains(rs[0].Remark, "lease") {
		t.Fatalf("send after the lease ran out: %+v, want BROKER_BUSY naming the lease", rs)
	}
	t.Logf("fenced %v after the metaserver stopped (lease %v): %s", fencedAfter.Round(time.Millisecond), 900*time.Millisecond, rs[0].Remark)
}
