package broker

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// forgedSlave is the attack of the hardening review, as a process on the
// master's network would run it: it connects to sync.port and echoes the
// master's message-log end in heartbeats, learning the end from the
// heartbeat answers, reconnecting whenever the master drops it.
type forgedSlave struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	accepted atomic.Int64 // heartbeats answered SUCCESS
	refused  atomic.Int64
}

func startForgedSlave(t *testing.T, syncAddr string) *forgedSlave {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forgedSlave{cancel: cancel}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		var end int64
		for ctx.Err() == nil {
			c, err := remoting.Dial(ctx, syncAddr, 0)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				resp, err := c.Call(cctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil,
					protocol.SyncLogRequest{Type: protocol.SyncTypeHeartbeat, MessageLogOffset: end}))
				ccancel()
				if err != nil {
					break
				}
				if resp.Header.Code != protocol.CodeSuccess {
					f.refused.Add(1)
					break
				}
				f.accepted.Add(1)
				if hb, err := protocol.DecodeSyncHeartbeatResponse(resp.Body); err == nil {
					end = hb.MessageLogMaxOffset
				}
				time.Sleep(5 * time.Millisecond)
			}
			c.Close()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(f.stop)
	return f
}

func (f *forgedSlave) stop() {
	f.cancel()
	f.wg.Wait()
}

// TestFaultForgedSlaveSlaveStoppedMasterKilled reproduces finding 1 of the
// hardening review with real processes: g1's brokers share sync.secret; a
// forged slave echoes the master's end on its sync port while the real
// slave is stopped (SIGSTOP); the master is killed (SIGKILL), the slave
// resumes and takes over. Every acknowledged send must still be consumed:
// the master acknowledged nothing on the forger's word.
func TestFaultForgedSlaveSlaveStoppedMasterKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess fault test")
	}
	m := startMeta(t)
	ports := testutil.FreePorts(t, 6)
	sets := append(failoverSets(true), testSyncSecret)
	a := newProcBroker(t, m, "g1", "forge-a", 0, ports[0], ports[1], sets...)
	b := newProcBroker(t, m, "g1", "forge-b", 1, ports[2], ports[3], sets...)
	c := newProcBroker(t, m, "g2", "forge-c", 0, ports[4], ports[5])
	a.start()
	b.start()
	c.start()
	a.waitLog("broker online", 20*time.Second)
	c.waitLog("broker online", 20*time.Second)
	b.waitLog("caught up with the master", 20*time.Second)

	l := startFaultLoad(t, m, "forge.subject")
	l.more(50, "before the attack")
	forger := startForgedSlave(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = b.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	stoppedAt := time.Now()
	l.more(100, "while the slave is stopped and the forger echoes the master's end")
	// Long enough for the producer to try g1 many times (and for a master
	// that believed the forger to acknowledge there).
	time.Sleep(3*time.Second - time.Since(stoppedAt))
	a.kill()
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	forger.stop()
	b.waitLog("this slave took over as the group's master", 30*time.Second)
	l.more(50, "after the failover")
	n := l.finish()
	// Consumers read from A while it lived, so consumption alone does not
	// show what its death lost: every acknowledged message must be in the
	// stores that survive it, the new master B's and g2's C.
	l.res.mu.Lock()
	acked := append([]string(nil), l.res.acked...)
	l.res.mu.Unlock()
	stored := storedIDs(t, acked, b.root(), c.root())
	var lost []string
	for _, id := range acked {
		if !stored[id] {
			lost = append(lost, id)
		}
	}
	t.Logf("%d acknowledged sends, all consumed, %d lost with the master; the forger's heartbeats: %d answered, %d refused",
		n, len(lost), forger.accepted.Load(), forger.refused.Load())
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged messages are on neither surviving broker (e.g. %q): the master acknowledged them on the forger's word",
			len(lost), len(acked), lost[:min(3, len(lost))])
	}
	if forger.accepted.Load() != 0 {
		t.Errorf("the master answered %d of the forger's heartbeats", forger.accepted.Load())
	}
}

// storedIDs returns which of ids are in the message logs under roots. An id
// is stored as str16 (length, then bytes) inside the QMQ message: the
// Go client's ids share a per-second prefix, found with bytes.Index.
func storedIDs(t *testing.T, ids []string, roots ...string) map[string]bool {
	t.Helper()
	var all []byte
	for _, r := range roots {
		all = append(all, logFiles(t, r, "messagelog")...)
	}
	prefixes := map[string]bool{}
	for _, id := range ids {
		prefixes[id[:strings.LastIndexByte(id, '.')+1]] = true
	}
	found := map[string]bool{}
	for p := range prefixes {
		data := all
		for {
			i := bytes.Index(data, []byte(p))
			if i < 0 {
				break
			}
			if i >= 2 && data[i-2] == 0 && i+int(data[i-1]) <= len(data) {
				found[string(data[i:i+int(data[i-1])])] = true
			}
			data = data[i+len(p):]
		}
	}
	return found
}
