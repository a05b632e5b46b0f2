package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/actionlog"
)

// actionsOfType counts the action records of type typ in a store's action log.
func actionsOfType(t *testing.T, st *storage.Store, typ actionlog.Type) []actionlog.Action {
	t.Helper()
	var out []actionlog.Action
	for off := int64(0); off < st.ActionLogEnd(); {
		v, err := st.ReadRaw(storage.ActionLog, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b := v.Bytes()
		off += int64(len(b))
		for len(b) > 0 {
			a, rt, n, err := actionlog.DecodeAction(b)
			if err != nil {
				v.Release()
				t.Fatalf("action log at %d: %v", off-int64(len(b)), err)
			}
			if rt == actionlog.RecordAction && a.Type == typ {
				out = append(out, a)
			}
			b = b[n:]
		}
		v.Release()
	}
	return out
}

// drain pulls (and acks) until k has n messages or the time is up.
func drain(t *testing.T, k *consumer, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, k.pull(1000, 200, false)...)
	}
	return got
}

// A consumer group that pulled once (and got nothing) is registered: the
// messages sent after that are delivered to it even when the broker
// restarts before its next pull. Before, the start lived in memory only
// and the restarted broker started the group at the newest message again,
// so it never got them. Concurrent first pulls record the start once;
// broadcast consumers get the same treatment; retry subjects record nothing
// (they always start at their oldest message); a CONSUME_MANAGE reset
// survives the restart too.
func TestNewGroupStartSurvivesRestart(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true)
	c := b.dial()
	const subject = "start.subject"
	c.mustSend(msg(subject, "before")) // before any group: for none of them but the reset one
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence(subject) == 0 })

	// Four consumers of the group pull for the first time at once.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r := protocol.PullRequest{Subject: subject, ConsumerGroup: "sg", ConsumerID: "c" + strconv.Itoa(i), RequestNum: 10, Offset: -1,
				PullOffsetBegin: -1, PullOffsetLast: -1, TimeoutMillis: 100}
			f, err := c.c.Call(ctx, protocol.CodePullMessage, protocol.AppendPullRequest(nil, &r, protocol.CurrentVersion))
			if err != nil || f.Header.Code != protocol.CodeNoMessage {
				t.Errorf("first pull of c%d: %v, status %d (want NO_MESSAGE)", i, err, f.Header.Code)
			}
		}()
	}
	wg.Wait()
	bc := newConsumer(c, subject, "", "bc1")
	bc.broadcast = true
	if got := bc.pull(10, -1, false); got != nil {
		t.Fatalf("new broadcast consumer got old messages %v", got)
	}
	retry := newConsumer(c, protocol.RetryPrefix+subject+"%sg", "sg", "c0")
	retry.pull(10, -1, false)
	rg := newConsumer(c, subject, "rg", "r1")
	rg.pull(10, -1, false)
	if f := c.call(protocol.CodeConsumeManage, protocol.AppendConsumeManageRequest(nil, &protocol.ConsumeManageRequest{Subject: subject,
		ConsumerGroup: "rg", Code: protocol.ConsumeFromEarliest})); f.Header.Code != protocol.CodeSuccess {
		t.Fatalf("CONSUME_MANAGE: %s", protocol.DecodeErrorBody(f.Body))
	}

	resets := actionsOfType(t, b.srv.inst().store, actionlog.Reset)
	var who []string
	for _, a := range resets {
		who = append(who, fmt.Sprintf("%s/%s/%d", a.Group, a.ConsumerID, a.LastMsgSeq))
	}
	// sg once (whichever consumer came first), bc1, rg's first pull and its reset.
	if len(resets) != 4 || resets[0].Group != "sg" || resets[0].LastMsgSeq != 0 || resets[1].Group != "bc1" || !resets[1].Broadcast ||
		resets[3].Group != "rg" || resets[3].LastMsgSeq != -1 {
		t.Errorf("RESET records %v; want sg/*/0, bc1/bc1/0, rg/r1/0, rg//-1", who)
	}

	want := sendN(t, c, subject, 120)
	b.restart()
	c = b.dial()
	for _, k := range []*consumer{newConsumer(c, subject, "sg", "c2"), bc} {
		k.c = c
		if got := drain(t, k, len(want)); !slices.Equal(got, want) {
			t.Fatalf("%s after the restart got %d messages (%.60v...), want the %d sent after its first pull", k.group+k.id, len(got), got, len(want))
		}
	}
	rg.c = c
	if got := drain(t, rg, len(want)+1); len(got) != len(want)+1 || got[0] != "before" {
		t.Fatalf("group reset to the earliest message got %d messages after the restart (first %q), want %d", len(got), got[:min(1, len(got))], len(want)+1)
	}
	// Known groups write no RESET when the restarted broker sees them again.
	if n := len(actionsOfType(t, b.srv.inst().store, actionlog.Reset)); n != 4 {
		t.Errorf("%d RESET records after the restart, want still 4", n)
	}
}

// dialPort is a raw client of the broker listening on port (a subprocess).
func dialPort(t *testing.T, m *metaHarness, port int) *conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, meta: m}
}

// A group registered on the master (one empty pull) keeps its start when
// the master is killed and its slave takes over: the slave got the RESET
// record before the pull was answered, so the new master hands the group
// every message sent to the old one after it registered. Before, the new
// master had never heard of the group and started it at the newest message.
func TestNewGroupStartSurvivesFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess failover test")
	}
	m := startMeta(t)
	ports := testutil.FreePorts(t, 4)
	a := newProcBroker(t, m, "g1", "gs-a", 0, ports[0], ports[1], failoverSets(true)...)
	b := newProcBroker(t, m, "g1", "gs-b", 1, ports[2], ports[3], failoverSets(true)...)
	a.start()
	b.start()
	a.waitLog("broker online", 20*time.Second)
	b.waitLog("caught up with the master", 20*time.Second)
	const subject = "start.failover"
	ca := dialPort(t, m, a.port)
	k := newConsumer(ca, subject, "fg", "c1")
	if got := k.pull(10, 300, false); got != nil {
		t.Fatalf("new group got messages before any was sent: %v", got)
	}
	want := sendN(t, ca, subject, 200) // wait.slave.wrote: on the slave once acknowledged
	a.kill()
	b.waitLog("this slave took over as the group's master", 20*time.Second)
	b.waitLog("broker online", 20*time.Second)
	k.c = dialPort(t, m, b.port)
	if got := drain(t, k, len(want)); !slices.Equal(got, want) {
		t.Fatalf("after the failover the group got %d messages (%.60v...), want the %d sent after its first pull", len(got), got, len(want))
	}
}
