package replication

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/checkpoint"
	"github.com/qmq-go/qmq/storage/vfs"
)

func TestGarbageOnSyncPort(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	for range 100 {
		p.appendBatch(t)
	}
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()

	// Not the QMQ protocol at all: the connection is closed.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(nc).ReadByte(); err != io.EOF {
		t.Fatalf("garbage got %v, want the connection closed", err)
	}
	nc.Close()

	// Well-framed nonsense gets an error answer.
	c, err := remoting.Dial(context.Background(), addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(code int16, body []byte) protocol.Frame {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f, err := c.Call(ctx, code, body)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		code   int16
		body   []byte
		status int16
		says   string
	}{
		{"short body", protocol.CodeSyncLogRequest, []byte{2, 0, 0}, protocol.CodeParamError, "want 17"},
		{"unknown sync type", protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, protocol.SyncLogRequest{Type: 9}), protocol.CodeBrokerError, "unknown(9)"},
		{"beyond the end", protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, protocol.SyncLogRequest{Type: protocol.SyncTypeMessage, MessageLogOffset: 1 << 40}), protocol.CodeBrokerReject, "past the master's end"},
		{"not a record boundary", protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, protocol.SyncLogRequest{Type: protocol.SyncTypeAction, ActionLogOffset: 3}), protocol.CodeBrokerError, "cannot read"},
		{"checkpoint version 7", protocol.CodeSyncCheckpointRequest, []byte{7}, protocol.CodeParamError, "version 7"},
	} {
		f := call(tc.code, tc.body)
		if msg := protocol.DecodeErrorBody(f.Body); f.Header.Code != tc.status || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: status %s, %q", tc.name, protocol.CodeName(f.Header.Code, true), msg)
		}
	}
	// A Java slave's checkpoint request (empty body) gets QMQ's version 1.
	f := call(protocol.CodeSyncCheckpointRequest, nil)
	r, err := protocol.DecodeSyncCheckpointResponse(f.Body)
	if err != nil || r.Version != protocol.SyncCheckpointV1 {
		t.Fatalf("V1 checkpoint: %+v %v", r, err)
	}
	if mcp, err := checkpoint.DecodeMessage(r.MessageCheckpoint); err != nil || mcp.Offset != master.MessageLogEnd() {
		t.Fatalf("V1 message checkpoint %+v %v (log ends at %d)", mcp, err, master.MessageLogEnd())
	}

	// The master still serves a slave.
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	startSlave(t, addr, slave, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	if st := m.srv.Stats(); st.BadFrames != 1 {
		t.Fatalf("server stats %+v", st)
	}
}

func TestSlaveBehindRetentionIsRefusedUntilWiped(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	p := &producer{store: master, subjects: testSubjects}
	for range 200 {
		p.appendBatch(t)
	}
	m, mr := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()
	slave := openStore(t, slaveCfg)
	_, sr := startSlave(t, addr, slave, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	sr.stop()
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}

	// While the slave is down the master writes on and retention deletes
	// segments the slave never copied.
	mr.stop()
	if err := master.Close(); err != nil {
		t.Fatal(err)
	}
	short := masterCfg
	short.MessageLogRetention, short.PullLogRetention, short.ConsumerLogRetention = time.Millisecond, time.Millisecond, time.Millisecond
	short.RetentionCheckInterval = 20 * time.Millisecond
	master = openStore(t, short)
	p.store = master
	slaveEnd := slave.LogEnd(storage.MessageLog)
	deadline := time.Now().Add(20 * time.Second)
	for info := master.ReplicaInfo(); info.MessageStart <= slaveEnd || info.ActionStart == 0; info = master.ReplicaInfo() {
		if time.Now().After(deadline) {
			t.Fatalf("retention did not pass the slave's end %d: %+v", slaveEnd, info)
		}
		for range 20 {
			p.appendBatch(t)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if err := master.Close(); err != nil { // stop retention so the files hold still
		t.Fatal(err)
	}
	master = openStore(t, masterCfg)
	defer master.Close()
	startMaster(t, master, addr, nil)

	slave = openStore(t, slaveCfg)
	logs := &testlog.Buffer{}
	s, sr := startSlave(t, addr, slave, func(c *SlaveConfig) { c.Logger = testLogger(t, "slave", logs) })
	time.Sleep(500 * time.Millisecond)
	if st := s.Status(); !strings.Contains(st.LastError, "delete its store.root") || st.Connected {
		t.Fatalf("behind retention: %+v", st)
	}
	if n := logs.Count("retention on the master deleted"); n != 1 {
		t.Fatalf("%d refusal lines, want 1:\n%s", n, logs)
	}
	t.Logf("slave log:\n%s", logs)
	sr.stop()
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}

	// The documented recovery: wipe and restart.
	if err := os.RemoveAll(slaveCfg.Root); err != nil {
		t.Fatal(err)
	}
	slave = openStore(t, slaveCfg)
	defer slave.Close()
	startSlave(t, addr, slave, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	info := master.ReplicaInfo()
	if info.MessageStart == 0 || info.ActionStart == 0 {
		t.Fatalf("the master's logs should start late: %+v", info)
	}
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	sameTables(t, master, slave) // the master's table was installed at its snapshot offset
}

// TestSlaveCrashMidAppend: power loss on the slave while it copies (torn,
// reordered or zeroed tails, lost directory entries); the slave recovers by
// the store's own recovery and catches up from its own end.
func TestSlaveCrashMidAppend(t *testing.T) {
	masterCfg := storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i, opts := range []vfs.CrashOptions{
		{TornTail: true},
		{ReorderedTail: true, UnsyncedDirOps: true},
		{ZeroedTail: true, TornTail: true},
		{TornTail: true, UnsyncedDirOps: true},
	} {
		slaveCfg := storeConfig(t.TempDir())
		cfs := vfs.NewCrashFS(vfs.Default())
		// At the power loss the machine stops: from then on no file-system
		// call of the dying store reaches the disk (its writes through
		// mappings go to the files the crash replaced).
		var dead atomic.Bool
		slaveCfg.FS = vfs.NewErrorFS(cfs, func(op, path string) error {
			if dead.Load() {
				return errors.New("powered off")
			}
			return nil
		})
		slave := openStore(t, slaveCfg)
		_, sr := startSlave(t, addr, slave, nil)
		stop := make(chan struct{})
		wg := runProducers(t, p, 2, stop)
		time.Sleep(time.Duration(100+rng.Intn(300)) * time.Millisecond)
		dead.Store(true) // mid-append: the slave is copying
		if err := cfs.Crash(rng, opts); err != nil {
			t.Fatal(err)
		}
		sr.stop()
		slave.Close() // fails: the disk is gone
		close(stop)
		wg.Wait()

		slaveCfg.FS = vfs.NewCrashFS(vfs.Default())
		slave = openStore(t, slaveCfg)
		recovered := slave.LogEnd(storage.MessageLog)
		startSlave(t, addr, slave, nil)
		waitCaughtUp(t, master, slave, 20*time.Second)
		sameFiles(t, masterCfg.Root, slaveCfg.Root)
		checkServes(t, master, slave)
		sameTables(t, master, slave)
		t.Logf("crash %d %+v: the slave recovered to message-log offset %d and caught up to %d", i, opts, recovered, master.MessageLogEnd())
		if err := slave.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlaveAheadOfMasterIsRefused: the master lost data the slave holds (it
// was replaced by an empty one here); the slave refuses to mix the two and
// says how to recover.
func TestSlaveAheadOfMasterIsRefused(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	p := &producer{store: master, subjects: testSubjects}
	for range 50 {
		p.appendBatch(t)
	}
	m, mr := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	s, _ := startSlave(t, addr, slave, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	mr.stop()
	master.Close()

	lost := openStore(t, storeConfig(t.TempDir()))
	defer lost.Close()
	startMaster(t, lost, addr, nil)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Status().LastError, "past the master's end") {
		if time.Now().After(deadline) {
			t.Fatalf("slave ahead of its master: %+v", s.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if slave.LogEnd(storage.MessageLog) != master.MessageLogEnd() {
		t.Fatal("the slave's copy changed")
	}
}
