package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// pairMember is a broker of group g1 registered with fixed ports and role
// (0 master, 1 slave), not started.
func pairMember(t *testing.T, m *metaHarness, host string, role, port, syncPort int, sets ...string) *brokerHarness {
	t.Helper()
	dir := t.TempDir()
	keys := "meta.server.endpoint=" + m.endpoint() + "\nbroker.http.port=0\nmeta.retry.interval.ms=100\nbroker.heartbeat.interval.ms=200\nmessage.retry.delay.seconds=0\n"
	m.AddBrokerPorts("g1", role, host, port, syncPort)
	b := &brokerHarness{t: t, meta: m, dir: dir, base: keys, root: filepath.Join(dir, "store"), hostname: host, group: "g1", port: port,
		sets: append([]string{"sync.port=" + strconv.Itoa(syncPort)}, sets...)}
	t.Cleanup(b.stop)
	return b
}

// logFiles concatenates a store's files of one log (messagelog, actionlog).
func logFiles(t *testing.T, root, log string) []byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, log))
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(root, log, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, []byte(e.Name())...)
		all = append(all, bytes.TrimRight(b, "\x00")...)
	}
	return all
}

// TestSlaveStartedFirstWaitSlaveWrote starts the slave before its master
// (QMQ cannot), then sends with wait.slave.wrote: every acknowledged message
// is on the slave, whose logs end up byte-for-byte the master's; the slave
// refuses clients. With the slave stopped, sends are answered BROKER_BUSY
// with the reason; once it is back, they succeed again.
func TestSlaveStartedFirstWaitSlaveWrote(t *testing.T) {
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	master := pairMember(t, m, "repl-master", 0, p[0], p[1], "wait.slave.wrote=true", "wait.slave.wrote.timeout.ms=1500")
	slave := pairMember(t, m, "repl-slave", 1, p[2], p[3])

	slave.start(false, false)
	testutil.Eventually(t, 10*time.Second, "slave role known", func() bool { return slave.srv.inst().role.Load() == protocol.RoleSlave })
	master.start(false, true)
	testutil.Eventually(t, 10*time.Second, "slave connected to the master", func() bool {
		r := master.srv.inst().replica.Load()
		return r != nil && r.master.Lag().Slave != ""
	})

	c := master.dial()
	var ids []string
	for range 10 {
		ids = append(ids, sendN(t, c, "repl.subject", 20)...)
		// Acknowledged means written to the slave's message log (its
		// consumer logs follow by replay, a moment later).
		if got, want := slave.srv.inst().store.MessageLogEnd(), master.srv.inst().store.MessageLogEnd(); got < want {
			t.Fatalf("send acknowledged but the slave's message log ends at %d, the master's at %d", got, want)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every acknowledged message readable on the slave", func() bool {
		for seq := int64(0); seq < int64(len(ids)); seq++ {
			rec, err := slave.srv.inst().store.Read("repl.subject", seq)
			if err != nil {
				return false
			}
			rec.Release()
		}
		return true
	})
	testutil.Eventually(t, 10*time.Second, "identical message logs", func() bool {
		return bytes.Equal(logFiles(t, master.root, "messagelog"), logFiles(t, slave.root, "messagelog"))
	})

	// The slave serves no clients.
	sc := slave.dial()
	resp := sc.call(protocol.CodePullMessage, protocol.AppendPullRequest(nil, &protocol.PullRequest{Subject: "repl.subject", ConsumerGroup: "g",
		ConsumerID: "c1", RequestNum: 10, Offset: -1, PullOffsetBegin: -1, PullOffsetLast: -1}, protocol.CurrentVersion))
	if resp.Header.Code == protocol.CodeSuccess || !strings.Contains(protocol.DecodeErrorBody(resp.Body), "slave") {
		t.Fatalf("pull from the slave answered %d %q; want a refusal naming the slave role", resp.Header.Code, protocol.DecodeErrorBody(resp.Body))
	}

	// Slave down: the master stores but cannot confirm; the producer is told.
	slave.stop()
	results := c.send(msg("repl.subject", "unconfirmed-1"))
	if len(results) != 1 || results[0].Code != protocol.SendBrokerBusy || !strings.Contains(results[0].Remark, "slave has not confirmed") {
		t.Fatalf("send with the slave down: %+v; want BROKER_BUSY explaining the slave did not confirm", results)
	}
	slave.start(false, false)
	testutil.Eventually(t, 15*time.Second, "sends confirmed again after the slave's restart", func() bool {
		return len(c.send(msg("repl.subject", "after-restart-"+strconv.FormatInt(time.Now().UnixNano(), 10)))) == 0
	})
	testutil.Eventually(t, 10*time.Second, "identical message logs after the slave's restart", func() bool {
		return bytes.Equal(logFiles(t, master.root, "messagelog"), logFiles(t, slave.root, "messagelog"))
	})
}

// TestLaggingSlaveMarksGroupReadonly: with wait.slave.wrote and
// slave.message.lag.mark_readonly, a master without a caught-up slave
// heartbeats read-only, so the metaserver stops giving the group to
// producers; once the slave has caught up, the group takes writes again.
func TestLaggingSlaveMarksGroupReadonly(t *testing.T) {
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	master := pairMember(t, m, "lag-master", 0, p[0], p[1], "wait.slave.wrote=true", "slave.message.lag.mark_readonly=true",
		"slave.message.lag.time.max.seconds=1")
	slave := pairMember(t, m, "lag-slave", 1, p[2], p[3])
	master.start(false, true)
	producerGroups := func() []string {
		groups, err := m.register("lag.subject")
		if err != nil {
			return nil
		}
		return groups
	}
	testutil.Eventually(t, 10*time.Second, "the group read-only for producers while no slave has caught up", func() bool {
		return master.srv.inst().brokerState() == protocol.BrokerStateR && len(producerGroups()) == 0
	})
	slave.start(false, false)
	testutil.Eventually(t, 15*time.Second, "the group writable again once the slave caught up", func() bool {
		return master.srv.inst().brokerState() == protocol.BrokerStateRW && len(producerGroups()) == 1
	})
}

// TestHealthShowsReplication reads /health on both sides of a pair: the
// runbook's "wait for the slave's lag to reach 0" is read there.
func TestHealthShowsReplication(t *testing.T) {
	m := startMeta(t)
	p := testutil.FreePorts(t, 4)
	master := pairMember(t, m, "health-master", 0, p[0], p[1])
	slave := pairMember(t, m, "health-slave", 1, p[2], p[3])
	master.start(false, true)
	slave.start(false, false)
	get := func(b *brokerHarness) healthReport {
		resp, err := http.Get("http://" + b.srv.HTTPAddr().String() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h healthReport
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	sendN(t, master.dial(), "health.subject", 10)
	testutil.Eventually(t, 10*time.Second, "master reports its slave caught up", func() bool {
		h := get(master)
		return h.Role == "MASTER" && h.Slave != "" && h.SlaveLagBytes != nil && *h.SlaveLagBytes == 0
	})
	h := get(slave)
	if h.Role != "SLAVE" || h.MasterConnected == nil || !*h.MasterConnected || h.MessageLogEnd != get(master).MessageLogEnd {
		t.Fatalf("slave /health = %+v; want role SLAVE, connected, same message-log end as the master", h)
	}
	// A slave registers nothing ONLINE (as in QMQ), yet a following slave is online.
	if !h.Online || !get(master).Online {
		t.Fatalf("/health online: slave %v, master %v; want both true", h.Online, get(master).Online)
	}
}

// TestHealthShowsMarkReadonly: a master an admin marked read-only
// (MarkReadonlyBrokerGroup) says so on /health, from the metaserver's
// answer to its heartbeat, and stops saying so once unmarked.
func TestHealthShowsMarkReadonly(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	health := func() healthReport {
		resp, err := http.Get("http://" + b.srv.HTTPAddr().String() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h healthReport
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	adm, ctx := m.admin(), context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if h := health(); h.Readonly || len(h.ReadonlySubjects) != 0 {
		t.Fatalf("/health before MarkReadonly: %+v", h)
	}
	must(adm.MarkReadonly(ctx, "g1", "*"))
	testutil.Eventually(t, 10*time.Second, "/health says readonly after MarkReadonly --subject=*", func() bool {
		h := health()
		return h.Readonly && slices.Equal(h.ReadonlySubjects, []string{"*"})
	})
	must(adm.UnMarkReadonly(ctx, "g1", "*"))
	must(adm.MarkReadonly(ctx, "g1", "one.subject"))
	testutil.Eventually(t, 10*time.Second, "/health lists the one read-only subject, the group itself writable", func() bool {
		h := health()
		return !h.Readonly && slices.Equal(h.ReadonlySubjects, []string{"one.subject"})
	})
	must(adm.UnMarkReadonly(ctx, "g1", "one.subject"))
	testutil.Eventually(t, 10*time.Second, "/health clear after UnMarkReadonly", func() bool {
		h := health()
		return !h.Readonly && len(h.ReadonlySubjects) == 0
	})
}
