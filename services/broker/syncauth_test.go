package broker

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

const testSyncSecret = "sync.secret=broker-test-secret-0123456789"

// TestPairWithSyncSecret: master and slave with the same sync.secret
// replicate and acknowledge; /health says the slave authenticated; a raw
// client speaking the sync protocol without the secret gets nothing.
func TestPairWithSyncSecret(t *testing.T) {
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	master := pairMember(t, m, "auth-master", 0, p[0], p[1], "wait.slave.wrote=true", "wait.slave.wrote.timeout.ms=1500", testSyncSecret)
	slave := pairMember(t, m, "auth-slave", 1, p[2], p[3], testSyncSecret)
	master.start(false, true)
	slave.start(false, false)
	sendN(t, master.dial(), "auth.subject", 20)
	var h healthReport
	testutil.Eventually(t, 10*time.Second, "master reports its slave authenticated and caught up", func() bool {
		resp, err := http.Get("http://" + master.srv.HTTPAddr().String() + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		h = healthReport{}
		return json.NewDecoder(resp.Body).Decode(&h) == nil && h.SlaveAuthenticated != nil && *h.SlaveAuthenticated &&
			h.SlaveLagBytes != nil && *h.SlaveLagBytes == 0
	})
	for _, b := range []*brokerHarness{master, slave} {
		if strings.Contains(b.logs.String(), "REPLICATION IS NOT AUTHENTICATED") {
			t.Errorf("%s warned about a missing secret it has", b.hostname)
		}
	}

	c, err := remoting.Dial(context.Background(), net.JoinHostPort("127.0.0.1", strconv.Itoa(p[1])), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, protocol.SyncLogRequest{
		Type: protocol.SyncTypeHeartbeat, MessageLogOffset: master.srv.inst().store.MessageLogEnd()}))
	if err != nil || resp.Header.Code != protocol.CodeBrokerReject || !strings.Contains(protocol.DecodeErrorBody(resp.Body), "sync auth required") {
		t.Fatalf("an unauthenticated heartbeat got %v %+v %q; want BROKER_REJECT, sync auth required", err, resp.Header, protocol.DecodeErrorBody(resp.Body))
	}
}

// TestPairSyncSecretsDiffer: the slave has a secret the master lacks: both
// log the same explanation, and sends are not acknowledged.
func TestPairSyncSecretsDiffer(t *testing.T) {
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	master := pairMember(t, m, "diff-master", 0, p[0], p[1], "wait.slave.wrote=true", "wait.slave.wrote.timeout.ms=500")
	slave := pairMember(t, m, "diff-slave", 1, p[2], p[3], testSyncSecret)
	master.start(false, true)
	slave.start(false, false)
	const want = "sync auth failed: secrets differ (the slave has sync.secret, the master of group g1 has none); set the same sync.secret on master and slave of group g1"
	for _, b := range []*brokerHarness{master, slave} {
		testutil.Eventually(t, 10*time.Second, b.hostname+" logs the mismatch", func() bool { return strings.Contains(b.logs.String(), want) })
	}
	if !strings.Contains(master.logs.String(), "REPLICATION IS NOT AUTHENTICATED: sync.secret is not set") {
		t.Errorf("the master without a secret did not warn at start:\n%s", master.logs)
	}
	if res := master.dial().send(msg("diff.subject", "unconfirmed")); len(res) != 1 || res[0].Code != protocol.SendBrokerBusy {
		t.Fatalf("send with no authenticated slave: %+v; want BROKER_BUSY", res)
	}
}

// TestSyncSecretSettings: sync.secret and sync.secret.file, and their errors.
func TestSyncSecretSettings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileBroker), "meta.server.endpoint=http://127.0.0.1:1/meta/address\n")
	file := filepath.Join(dir, "sync.secret")
	if err := os.WriteFile(file, []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(sets ...string) (Settings, error) {
		o, err := conf.ParseSet(sets)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := LoadSettings(dir, conf.Lookup{Overrides: o, Env: noEnv})
		return s, err
	}
	if s, err := load(); err != nil || s.SyncSecret.Set() {
		t.Fatalf("default: %v, secret %v; want none", err, s.SyncSecret)
	}
	if s, err := load("sync.secret.file=" + file); err != nil || !s.SyncSecret.Set() {
		t.Fatalf("from a file: %v %v", err, s.SyncSecret)
	}
	for _, tc := range []struct{ set, want string }{
		{"sync.secret=short", "too short"},
		{"sync.secret.file=" + filepath.Join(dir, "missing"), "read sync.secret.file"},
	} {
		if _, err := load(tc.set); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.set, err, tc.want)
		}
	}
	if _, err := load("sync.secret=0123456789abcdef0", "sync.secret.file="+file); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("both set: %v", err)
	}
}
