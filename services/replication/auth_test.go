package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
)

const testGroup = "g-auth"

var (
	goodSecret  = syncauth.NewSecret([]byte("0123456789abcdef-the-group-secret"))
	wrongSecret = syncauth.NewSecret([]byte("0123456789abcdef-another-secret!!"))
)

// forger is a raw sync client: what any process reaching sync.port can run.
type forger struct {
	t *testing.T
	c *remoting.Client
}

func dialForger(t *testing.T, addr string) *forger {
	t.Helper()
	c, err := remoting.Dial(context.Background(), addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &forger{t: t, c: c}
}

func (f *forger) call(code int16, body []byte) (protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return f.c.Call(ctx, code, body)
}

// echoEnd sends heartbeats and copy requests claiming the slave has written
// everything up to end; it reports whether any was answered SUCCESS.
func (f *forger) echoEnd(end int64) (accepted bool) {
	for _, r := range []protocol.SyncLogRequest{
		{Type: protocol.SyncTypeHeartbeat, MessageLogOffset: end, ActionLogOffset: 0},
		{Type: protocol.SyncTypeMessage, MessageLogOffset: end},
	} {
		resp, err := f.call(protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, r))
		if err == nil && resp.Header.Code == protocol.CodeSuccess {
			accepted = true
		}
	}
	return accepted
}

// acknowledged reports whether WaitSlaveWrote(end) returns within d.
func acknowledged(m *Master, end int64, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return m.WaitSlaveWrote(ctx, end) == nil
}

// TestForgedSlaveCannotAcknowledge: a process that speaks the sync protocol
// without the secret, with a wrong one, or with a proof recorded on another
// connection gets nothing served and makes the master acknowledge nothing;
// the real slave, with the secret, still gets sends acknowledged.
func TestForgedSlaveCannotAcknowledge(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	for range 20 {
		p.appendBatch(t)
	}
	logs := &testlog.Buffer{}
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) {
		c.Secret, c.Group = goodSecret, testGroup
		c.Logger = testLogger(t, "master", logs)
	})
	addr := m.Addr().String()
	end := master.LogEnd(storage.MessageLog)

	// A forger that races the echo with the wait: reports keep coming while
	// WaitSlaveWrote waits. knownSlave is the last session /health shows
	// (a closed one stays, with its lag unknown).
	knownSlave := ""
	forge := func(name string, f func() bool) {
		t.Helper()
		var wg sync.WaitGroup
		var served bool
		wg.Add(1)
		go func() {
			defer wg.Done()
			served = f()
		}()
		if acknowledged(m, end, 500*time.Millisecond) {
			t.Errorf("%s: the master acknowledged message-log offset %d that no slave wrote", name, end)
		}
		wg.Wait()
		if served {
			t.Errorf("%s: a sync request was served", name)
		}
		if l := m.Lag(); l.Slave != knownSlave || l.MessageBytes != -1 {
			t.Errorf("%s: /health would show the forger as the slave: %+v", name, l)
		}
	}

	forge("no handshake", func() bool {
		f := dialForger(t, addr)
		served := false
		for range 5 {
			served = f.echoEnd(end) || served
		}
		resp, err := f.call(protocol.CodeSyncCheckpointRequest, []byte{protocol.SyncCheckpointV2})
		return served || err == nil && resp.Header.Code == protocol.CodeSuccess
	})

	forge("wrong secret", func() bool {
		f := dialForger(t, addr)
		c := syncauth.Client{Secret: wrongSecret, Group: testGroup, Role: syncauth.RoleSlave}
		err := c.Authenticate(context.Background(), func(ctx context.Context, body []byte) (protocol.Frame, error) {
			return f.c.Call(ctx, protocol.CodeSyncAuth, body)
		})
		var ref *syncauth.Refusal
		if !errors.As(err, &ref) || !strings.Contains(ref.Msg, "secrets differ") {
			t.Errorf("wrong secret: handshake %v, want a refusal saying the secrets differ", err)
		}
		return f.echoEnd(end)
	})

	forge("no secret but a hello", func() bool {
		f := dialForger(t, addr)
		c := syncauth.Client{Group: testGroup, Role: syncauth.RoleSlave}
		if err := c.Authenticate(context.Background(), func(ctx context.Context, body []byte) (protocol.Frame, error) {
			return f.c.Call(ctx, protocol.CodeSyncAuth, body)
		}); err == nil {
			t.Error("a hello without a secret authenticated at a master with one")
		}
		return f.echoEnd(end)
	})

	// Record a good handshake (hello and proof) on one connection, then
	// replay both on another: the second connection's server nonce differs.
	var recorded [][]byte
	{
		f := dialForger(t, addr)
		c := syncauth.Client{Secret: goodSecret, Group: testGroup, Role: syncauth.RoleSlave}
		if err := c.Authenticate(context.Background(), func(ctx context.Context, body []byte) (protocol.Frame, error) {
			recorded = append(recorded, append([]byte(nil), body...))
			return f.c.Call(ctx, protocol.CodeSyncAuth, body)
		}); err != nil {
			t.Fatalf("the good handshake failed: %v", err)
		}
		f.c.Close() // the recorded connection is gone; its session with it
		testutil.Eventually(t, 10*time.Second, "the recorded session's connection to close", func() bool { return m.srv.Stats().Connections == 0 })
		knownSlave = m.Lag().Slave
	}
	forge("replayed proof", func() bool {
		f := dialForger(t, addr)
		for i, body := range recorded {
			resp, err := f.call(protocol.CodeSyncAuth, body)
			if i == len(recorded)-1 && err == nil && resp.Header.Code == protocol.CodeSuccess {
				t.Error("a proof replayed from another connection was accepted")
			}
		}
		return f.echoEnd(end)
	})
	forge("proof without hello", func() bool {
		f := dialForger(t, addr)
		if resp, err := f.call(protocol.CodeSyncAuth, recorded[len(recorded)-1]); err == nil && resp.Header.Code == protocol.CodeSuccess {
			t.Error("a proof without a hello was accepted")
		}
		return f.echoEnd(end)
	})
	if n := logs.Count("secrets differ"); n == 0 {
		t.Errorf("the master logged no refusal:\n%s", logs)
	}

	// The real slave, with the secret, copies and acknowledges.
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	startSlave(t, addr, slave, func(c *SlaveConfig) { c.Secret, c.Group = goodSecret, testGroup })
	end = p.appendBatch(t)
	if !acknowledged(m, end, 10*time.Second) {
		t.Fatalf("the real slave's writes were not acknowledged: %+v", m.Lag())
	}
	if l := m.Lag(); !l.Authenticated || l.MessageBytes != 0 {
		t.Errorf("lag with the real slave: %+v", l)
	}
	// A forger arriving now changes nothing either.
	f := dialForger(t, addr)
	if f.echoEnd(1 << 40) {
		t.Error("a forger's request was served next to the real slave")
	}
	if l := m.Lag(); l.MessageOffset > master.LogEnd(storage.MessageLog) {
		t.Errorf("the forger's offset counts: %+v", l)
	}
}

// TestSlaveAtUnregisteredAddress: a connection that holds the secret but
// comes from an address other than the group's registered slave is refused
// with an explanation on both sides and counts for nothing; once the
// registration names its address it syncs.
func TestSlaveAtUnregisteredAddress(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	end := p.appendBatch(t)
	var mu sync.Mutex
	registered := "10.9.9.9"
	masterLogs, slaveLogs := &testlog.Buffer{}, &testlog.Buffer{}
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) {
		c.Secret, c.Group = goodSecret, testGroup
		c.Logger = testLogger(t, "master", masterLogs)
		c.CheckSlave = func(_ context.Context, remote net.Addr) error {
			mu.Lock()
			defer mu.Unlock()
			if host, _, _ := net.SplitHostPort(remote.String()); host != registered {
				return fmt.Errorf("sync connection from %s refused: the metaserver registers the slave of group %s at %s", host, testGroup, registered)
			}
			return nil
		}
	})
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	s, _ := startSlave(t, m.Addr().String(), slave, func(c *SlaveConfig) {
		c.Secret, c.Group = goodSecret, testGroup
		c.Logger = testLogger(t, "slave", slaveLogs)
	})
	if acknowledged(m, end, time.Second) {
		t.Fatal("a slave at an unregistered address got a send acknowledged")
	}
	if st := s.Status(); !strings.Contains(st.LastError, "registers the slave of group "+testGroup+" at 10.9.9.9") {
		t.Errorf("slave's last error: %q", st.LastError)
	}
	for name, logs := range map[string]*testlog.Buffer{"master": masterLogs, "slave": slaveLogs} {
		if logs.Count("registers the slave of group") == 0 {
			t.Errorf("the %s did not log the refusal:\n%s", name, logs)
		}
	}
	if l := m.Lag(); l.Slave != "" {
		t.Errorf("lag shows an unregistered slave: %+v", l)
	}
	mu.Lock()
	registered = "127.0.0.1"
	mu.Unlock()
	if !acknowledged(m, end, 10*time.Second) {
		t.Fatalf("the registered slave was not acknowledged: %+v", m.Lag())
	}
}

// TestSyncSecretsDiffer: a secret on one side only, or two different
// secrets, stop the sync with the same explanation on both sides.
func TestSyncSecretsDiffer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		master, slave syncauth.Secret
		detail        string
	}{
		{"different secrets", goodSecret, wrongSecret, "does not match the master's sync.secret"},
		{"master only", goodSecret, syncauth.Secret{}, "the master of group " + testGroup + " has sync.secret, the slave has none"},
		{"slave only", syncauth.Secret{}, goodSecret, "the slave has sync.secret, the master of group " + testGroup + " has none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master := openStore(t, storeConfig(t.TempDir()))
			defer master.Close()
			end := (&producer{store: master, subjects: testSubjects}).appendBatch(t)
			masterLogs, slaveLogs := &testlog.Buffer{}, &testlog.Buffer{}
			m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) {
				c.Secret, c.Group, c.Logger = tc.master, testGroup, testLogger(t, "master", masterLogs)
			})
			slave := openStore(t, storeConfig(t.TempDir()))
			defer slave.Close()
			s, _ := startSlave(t, m.Addr().String(), slave, func(c *SlaveConfig) {
				c.Secret, c.Group, c.Logger = tc.slave, testGroup, testLogger(t, "slave", slaveLogs)
			})
			const want = "sync auth failed: secrets differ"
			const fix = "set the same sync.secret on master and slave of group " + testGroup
			testutil.Eventually(t, 10*time.Second, "the slave to report the refusal", func() bool { return strings.Contains(s.Status().LastError, want) })
			if acknowledged(m, end, 300*time.Millisecond) {
				t.Error("acknowledged with differing secrets")
			}
			for name, logs := range map[string]*testlog.Buffer{"master": masterLogs, "slave": slaveLogs} {
				out := logs.String()
				if !strings.Contains(out, want) || !strings.Contains(out, fix) || !strings.Contains(out, tc.detail) {
					t.Errorf("the %s's log lacks %q / %q / %q:\n%s", name, want, fix, tc.detail, out)
				}
			}
			if got := slave.LogEnd(storage.MessageLog); got != 0 {
				t.Errorf("the slave copied %d bytes without authenticating", got)
			}
		})
	}
}

// TestNoSecretEitherSide: QMQ's behaviour, for compatibility: without a
// secret on both sides the slave syncs and acknowledges, unauthenticated.
func TestNoSecretEitherSide(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	end := (&producer{store: master, subjects: testSubjects}).appendBatch(t)
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) { c.Group = testGroup })
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	startSlave(t, m.Addr().String(), slave, func(c *SlaveConfig) { c.Group = testGroup })
	if !acknowledged(m, end, 10*time.Second) {
		t.Fatalf("not acknowledged: %+v", m.Lag())
	}
	if l := m.Lag(); l.Authenticated || l.Slave == "" {
		t.Errorf("lag: %+v", l)
	}
}

// TestSlaveReconnectReplacesSession: a second authenticated connection of
// the slave replaces the first (a restarted slave must not wait for its old
// connection to time out); the first one's reports no longer count.
func TestSlaveReconnectReplacesSession(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	end := (&producer{store: master, subjects: testSubjects}).appendBatch(t)
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) { c.Secret, c.Group = goodSecret, testGroup })
	auth := func(f *forger) {
		t.Helper()
		c := syncauth.Client{Secret: goodSecret, Group: testGroup, Role: syncauth.RoleSlave}
		if err := c.Authenticate(context.Background(), func(ctx context.Context, body []byte) (protocol.Frame, error) {
			return f.c.Call(ctx, protocol.CodeSyncAuth, body)
		}); err != nil {
			t.Fatal(err)
		}
	}
	first := dialForger(t, m.Addr().String())
	auth(first)
	second := dialForger(t, m.Addr().String())
	auth(second)
	testutil.Eventually(t, 10*time.Second, "the first connection to be closed", func() bool {
		select {
		case <-first.c.Done():
			return true
		default:
			return false
		}
	})
	if first.echoEnd(end) {
		t.Error("the replaced connection was served")
	}
	if acknowledged(m, end, 200*time.Millisecond) {
		t.Error("acknowledged before the current session reported")
	}
	if !second.echoEnd(end) || !acknowledged(m, end, time.Second) {
		t.Errorf("the current session's report did not count: %+v", m.Lag())
	}
}
