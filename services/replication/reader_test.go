package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
)

// authenticate runs the handshake of role on f's connection.
func (f *forger) authenticate(secret syncauth.Secret, role string) error {
	c := syncauth.Client{Secret: secret, Group: testGroup, Role: role}
	return c.Authenticate(context.Background(), func(ctx context.Context, body []byte) (protocol.Frame, error) {
		return f.c.Call(ctx, protocol.CodeSyncAuth, body)
	})
}

// TestReaderNeverCountsAsSlave: a reader (the backup) with the group's
// secret is served the logs, but its reports — even of offsets past the
// master's end — never make the master acknowledge a send, never show as
// the slave in the lag, and never replace the real slave's session.
func TestReaderNeverCountsAsSlave(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	for range 10 {
		p.appendBatch(t)
	}
	logs := &testlog.Buffer{}
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) {
		c.Secret, c.Group = goodSecret, testGroup
		c.Logger = testLogger(t, "master", logs)
	})
	addr := m.Addr().String()
	end := master.LogEnd(storage.MessageLog)

	r := dialForger(t, addr)
	if err := r.authenticate(goodSecret, syncauth.RoleBackup); err != nil {
		t.Fatalf("reader handshake: %v", err)
	}
	resp, err := r.call(protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, protocol.SyncLogRequest{Type: protocol.SyncTypeMessage, MessageLogOffset: 0}))
	if err != nil || resp.Header.Code != protocol.CodeSuccess {
		t.Fatalf("the reader was not served the message log: %v %v", err, resp.Header.Code)
	}
	if lr, err := protocol.DecodeSyncLogResponse(resp.Body); err != nil || len(lr.Data) == 0 {
		t.Fatalf("empty answer to the reader: %v", err)
	}
	var served bool
	done := make(chan struct{})
	go func() { defer close(done); served = r.echoEnd(end) }()
	if acknowledged(m, end, 500*time.Millisecond) {
		t.Fatal("a reader's reports made the master acknowledge a send")
	}
	<-done
	if !served {
		t.Fatal("the reader's requests were refused")
	}
	if l := m.Lag(); l.Slave != "" {
		t.Fatalf("the lag names the reader as the slave: %+v", l)
	}

	// The real slave's session survives a reader connecting after it.
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	startSlave(t, addr, slave, func(c *SlaveConfig) { c.Secret, c.Group = goodSecret, testGroup })
	waitCaughtUp(t, master, slave, 10*time.Second)
	before := m.Lag().Slave
	r2 := dialForger(t, addr)
	if err := r2.authenticate(goodSecret, syncauth.RoleBackup); err != nil {
		t.Fatal(err)
	}
	r2.echoEnd(end + 1_000_000)
	if l := m.Lag(); l.Slave != before || l.MessageBytes != 0 {
		t.Fatalf("a reader replaced or moved the slave's session: before %s, now %+v", before, l)
	}
	if !acknowledged(m, p.appendBatch(t), 5*time.Second) {
		t.Fatal("the real slave no longer gets sends acknowledged")
	}
	// A reader without the secret gets nothing.
	r3 := dialForger(t, addr)
	if err := r3.authenticate(syncauth.Secret{}, syncauth.RoleBackup); err == nil {
		t.Fatal("a reader without the secret passed the handshake")
	}
}

// TestReadersOnlyRefusesSlaves: a slave's sync port (ReadersOnly) serves
// the backup and refuses a peer that claims to be a slave, with or without
// a hello.
func TestReadersOnlyRefusesSlaves(t *testing.T) {
	st := openStore(t, storeConfig(t.TempDir()))
	defer st.Close()
	(&producer{store: st, subjects: testSubjects}).appendBatch(t)
	m, _ := startMaster(t, st, "127.0.0.1:0", func(c *MasterConfig) { c.Group, c.ReadersOnly = testGroup, true })
	addr := m.Addr().String()
	s := dialForger(t, addr)
	if err := s.authenticate(syncauth.Secret{}, syncauth.RoleSlave); err == nil || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("a slave's handshake on a readers-only port: %v", err)
	}
	legacy := dialForger(t, addr)
	if resp, err := legacy.call(protocol.CodeSyncCheckpointRequest, []byte{protocol.SyncCheckpointV2}); err == nil && resp.Header.Code == protocol.CodeSuccess {
		t.Fatal("a peer without a hello was served by a readers-only port")
	}
	r := dialForger(t, addr)
	if err := r.authenticate(syncauth.Secret{}, syncauth.RoleBackup); err != nil {
		t.Fatal(err)
	}
	resp, err := r.call(protocol.CodeSyncCheckpointRequest, []byte{protocol.SyncCheckpointV2})
	if err != nil || resp.Header.Code != protocol.CodeSuccess {
		t.Fatalf("the reader's handshake: %v %v", err, resp.Header.Code)
	}
	if l := m.Lag(); l.Slave != "" {
		t.Fatalf("a readers-only port has a slave session: %+v", l)
	}
}
