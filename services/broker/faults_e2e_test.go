package broker

// Fault tests with real processes (the subprocess harness of
// failover_e2e_test.go): group g1 is a master A and a slave B running with
// wait.slave.wrote and failover.enable, g2 a lone master C, so that
// producers (min.group.num=2) have somewhere else to go. Each test runs the
// Go client under load, injects a fault, and checks that every
// acknowledged send is consumed and that A's and B's logs end up
// byte-identical.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/faultproxy"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

func faultIterations() int {
	if os.Getenv("QMQ_LONG_TESTS") == "1" {
		return 5
	}
	return 1
}

// faultCluster is A (g1 master), B (g1 slave) and C (g2 master), with
// optional proxies in front of A's sync port (the slave's link) and of the
// metaserver (A's link to it).
type faultCluster struct {
	m         *metaHarness
	a, b, c   *procBroker
	syncProxy *faultproxy.Proxy // nil unless proxySync
	metaProxy *faultproxy.Proxy // nil unless proxyMeta
}

func startFaultCluster(t *testing.T, proxySync, proxyMeta bool) *faultCluster {
	t.Helper()
	f := &faultCluster{m: startMeta(t)}
	ports := testutil.FreePorts(t, 6)
	var via procNet
	if proxySync {
		f.syncProxy = faultproxy.New(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])))
		via.registeredSync = f.syncProxy.Port()
	}
	if proxyMeta {
		f.metaProxy = faultproxy.New(t, f.m.TCP())
		via.metaEndpoint = f.metaProxy.Addr()
	}
	// A lagging slave marks g1 read-only: producers then leave it for g2
	// instead of waiting wait.slave.wrote.timeout.ms on every other send.
	sets := append(failoverSets(true), "slave.message.lag.mark_readonly=true", "slave.message.lag.time.max.seconds=1")
	f.a = newProcBrokerVia(t, f.m, via, "g1", "fault-a", 0, ports[0], ports[1], sets...)
	f.b = newProcBroker(t, f.m, "g1", "fault-b", 1, ports[2], ports[3], sets...)
	f.c = newProcBroker(t, f.m, "g2", "fault-c", 0, ports[4], ports[5])
	f.a.start()
	f.b.start()
	f.c.start()
	f.a.waitLog("broker online", 20*time.Second)
	f.c.waitLog("broker online", 20*time.Second)
	f.b.waitLog("caught up with the master", 20*time.Second)
	return f
}

// faultLoad is one producer sending one message at a time and one
// consumer group subscribed before it started.
type faultLoad struct {
	t        *testing.T
	res      *loadResult
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	consumed func(ids []string, timeout time.Duration)
}

func startFaultLoad(t *testing.T, m *metaHarness, subject string) *faultLoad {
	t.Helper()
	l := &faultLoad{t: t, res: &loadResult{}, consumed: startConsumer(t, m.endpoint(), subject)}
	time.Sleep(time.Second) // the consumer group exists before the first send
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	p, err := client.NewProducer(ctx, m.endpoint(), client.WithSendTimeout(2*time.Second), client.WithRouteRefresh(300*time.Millisecond))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); produce(ctx, t, p, subject, l.res) }()
	t.Cleanup(func() {
		cancel()
		l.wg.Wait()
		p.Close(context.Background())
	})
	return l
}

// more waits for n more acknowledged sends.
func (l *faultLoad) more(n int, what string) {
	l.t.Helper()
	start := time.Now()
	from := l.res.count()
	target := from + n
	testutil.Eventually(l.t, 30*time.Second, fmt.Sprintf("%d more acknowledged sends %s (%d acknowledged before)", n, what, from), func() bool {
		c := l.res.count()
		if c < target && time.Since(start) > 20*time.Second {
			l.t.Logf("only %d more acknowledged sends %s after %v", c-from, what, time.Since(start).Round(time.Second))
		}
		return c >= target
	})
}

// finish stops the producer and checks that every acknowledged send is consumed.
func (l *faultLoad) finish() int {
	l.t.Helper()
	l.cancel()
	l.wg.Wait()
	l.res.mu.Lock()
	ids := append([]string(nil), l.res.acked...)
	l.res.mu.Unlock()
	l.consumed(ids, 60*time.Second)
	return len(ids)
}

// rawSender sends single messages straight to one broker (no client
// routing), to see what that broker answers.
type rawSender struct {
	t    *testing.T
	addr string
	n    atomic.Int64
	mu   sync.Mutex
	c    *remoting.Client
}

func newRawSender(t *testing.T, port int) *rawSender {
	r := &rawSender{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.c != nil {
			r.c.Close()
		}
	})
	return r
}

const sendOK int32 = -1

// send sends one message; code is sendOK when it was acknowledged.
func (r *rawSender) send(subject string, timeout time.Duration) (code int32, remark string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r.mu.Lock()
	if r.c == nil || r.c.Err() != nil {
		if r.c != nil {
			r.c.Close()
		}
		if r.c, err = remoting.Dial(ctx, r.addr, 0); err != nil {
			r.c = nil
			r.mu.Unlock()
			return 0, "", err
		}
	}
	c := r.c
	r.mu.Unlock()
	m := msg(subject, fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), r.n.Add(1)))
	body, err := protocol.AppendMessage(nil, &m)
	if err != nil {
		return 0, "", err
	}
	f, err := c.Call(ctx, protocol.CodeSendMessage, body)
	if err != nil {
		return 0, "", err
	}
	if f.Header.Code != protocol.CodeSuccess {
		return 0, "", fmt.Errorf("SEND_MESSAGE status %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
	rs, err := protocol.DecodeSendResults(f.Body)
	if err != nil || len(rs) == 0 {
		return sendOK, "", err
	}
	return rs[0].Code, rs[0].Remark, nil
}

// logTime is the time stamp of b's first log line containing what.
func logTime(t *testing.T, b *procBroker, what string) time.Time {
	t.Helper()
	for _, line := range strings.Split(b.out.String(), "\n") {
		if !strings.Contains(line, what) {
			continue
		}
		ts, _, _ := strings.Cut(line, " ")
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts)
		if err != nil {
			t.Fatalf("%s: cannot read the time of log line %q: %v", b.host, line, err)
		}
		return at
	}
	t.Fatalf("%s never logged %q", b.host, what)
	return time.Time{}
}

// TestFaultSyncLinkSlowAndPartitioned: the slave's link to the master is
// slowed (sends are still acknowledged), then cut: the master answers
// BROKER_BUSY after wait.slave.wrote.timeout.ms, producers go on with g2,
// and the slave does not take over (the master still holds its lease).
// Healed, the master acknowledges again and the logs converge.
func TestFaultSyncLinkSlowAndPartitioned(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess fault test")
	}
	for i := range faultIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			f := startFaultCluster(t, true, false)
			subject := "fault.sync"
			load := startFaultLoad(t, f.m, subject)
			probe := newRawSender(t, f.a.port)
			load.more(100, "before the faults")

			f.syncProxy.SetDelay(20 * time.Millisecond)
			load.more(100, "over a slow sync link")
			if code, remark, err := probe.send(subject, 5*time.Second); err != nil || code != sendOK {
				t.Fatalf("over a slow sync link the master should still acknowledge: code %d %q %v", code, remark, err)
			}
			f.syncProxy.SetDelay(0)

			f.syncProxy.Partition()
			code, remark, err := probe.send(subject, 5*time.Second)
			if err != nil || code != protocol.SendBrokerBusy {
				t.Fatalf("with its slave cut off the master should answer BROKER_BUSY, got code %d %q %v", code, remark, err)
			}
			t.Logf("cut off from its slave, the master answers: %s", remark)
			load.more(100, "while the slave is cut off (producers use g2)")
			time.Sleep(2 * time.Second) // longer than failover.master.timeout.ms: the slave must not take over

			f.syncProxy.Heal()
			testutil.Eventually(t, 20*time.Second, "the master acknowledges again after the heal", func() bool {
				code, _, err := probe.send(subject, 5*time.Second)
				return err == nil && code == sendOK
			})
			load.more(100, "after the heal")
			n := load.finish()
			if strings.Contains(f.b.out.String(), "took over") {
				t.Fatal("the slave took over although the master held its lease")
			}
			sameLogs(t, f.a.root(), f.b.root(), 30*time.Second)
			t.Logf("%d acknowledged sends all consumed; logs identical", n)
		})
	}
}

// runSlaveFault kills the slave (SIGKILL) twice under load at random
// points, wiping its store.root first when wipe is set, and restarts it.
func runSlaveFault(t *testing.T, wipe bool) {
	f := startFaultCluster(t, false, false)
	subject := "fault.slave"
	load := startFaultLoad(t, f.m, subject)
	probe := newRawSender(t, f.a.port)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for round := 0; round < 2; round++ {
		load.more(20+rng.IntN(200), "before the slave is killed")
		f.b.kill()
		if wipe {
			if err := os.RemoveAll(f.b.root()); err != nil {
				t.Fatal(err)
			}
		}
		code, remark, err := probe.send(subject, 5*time.Second)
		if err != nil || code != protocol.SendBrokerBusy {
			t.Fatalf("without its slave the master should answer BROKER_BUSY, got code %d %q %v", code, remark, err)
		}
		load.more(50, "while the slave is down (producers use g2)")
		f.b.start()
		testutil.Eventually(t, 30*time.Second, "the master acknowledges again once the slave is back", func() bool {
			code, _, err := probe.send(subject, 5*time.Second)
			return err == nil && code == sendOK
		})
	}
	load.more(50, "after the slave's last restart")
	n := load.finish()
	sameLogs(t, f.a.root(), f.b.root(), 30*time.Second)
	t.Logf("wipe=%v: %d acknowledged sends all consumed; logs identical", wipe, n)
}

func TestFaultSlaveKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess fault test")
	}
	for i := range faultIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) { runSlaveFault(t, false) })
	}
}

func TestFaultSlaveDiskWiped(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess fault test")
	}
	for i := range faultIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) { runSlaveFault(t, true) })
	}
}

// TestFaultLiveMasterPartitioned: master A stays up but loses the
// metaserver and its slave. It must stop acknowledging (fencing) before B,
// promoted, takes writes; healed, A learns it lost the group, cuts its
// unreplicated tail, rejoins as B's slave and converges.
func TestFaultLiveMasterPartitioned(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess fault test")
	}
	for i := range faultIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			f := startFaultCluster(t, true, true)
			subject := "fault.split"
			load := startFaultLoad(t, f.m, subject)
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			load.more(20+rng.IntN(300), "before the partition")

			f.metaProxy.Partition()
			f.syncProxy.Partition()
			cut := time.Now()
			probe := startFenceProbe(t, f.a.port, subject, cut)
			f.b.waitLog("this slave took over as the group's master", 20*time.Second)
			took := logTime(t, f.b, "this slave took over as the group's master")
			testutil.Eventually(t, 10*time.Second, "the partitioned master refuses sends (fencing)", probe.fenced)
			fencedAt, ackedAfter, probeRemark := probe.stop()
			t.Logf("partitioned at 0: old master fenced at +%v (%q), slave took over at +%v",
				fencedAt.Sub(cut).Round(time.Millisecond), probeRemark, took.Sub(cut).Round(time.Millisecond))
			if !fencedAt.Before(took) {
				t.Fatalf("the old master still took sends at %v, after the slave took over at %v", fencedAt, took)
			}
			if ackedAfter > 0 {
				t.Fatalf("the partitioned master acknowledged %d sends after the partition", ackedAfter)
			}
			f.b.waitLog("broker online", 20*time.Second)
			load.more(50, "after the promotion")

			f.metaProxy.Heal()
			f.syncProxy.Heal()
			f.a.waitLog("caught up with the master", 30*time.Second)
			// The sends A stored after the partition (answered BROKER_BUSY) were never the group's.
			f.a.waitLog("cut the tail this former master never replicated", time.Second)
			load.more(50, "after the old master rejoined")
			n := load.finish()
			sameLogs(t, f.b.root(), f.a.root(), 30*time.Second)
			t.Logf("%d acknowledged sends all consumed; the old master rejoined and its logs are identical", n)
		})
	}
}

// fenceProbe sends to a cut-off master every 20 ms, each send on its own,
// recording when it first answered BROKER_READ_ONLY (fenced) and how many
// sends it acknowledged after countFrom.
type fenceProbe struct {
	mu         sync.Mutex
	fencedAt   time.Time
	ackedAfter int
	remark     string
	stopSends  context.CancelFunc
	wg         sync.WaitGroup
}

func startFenceProbe(t *testing.T, port int, subject string, countFrom time.Time) *fenceProbe {
	t.Helper()
	sender := newRawSender(t, port)
	ctx, cancel := context.WithCancel(context.Background())
	p := &fenceProbe{stopSends: cancel}
	t.Cleanup(func() { p.stop() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for backoff.Sleep(ctx, 20*time.Millisecond) == nil {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				code, remark, err := sender.send(subject, 3*time.Second)
				now := time.Now()
				p.mu.Lock()
				defer p.mu.Unlock()
				switch {
				case err != nil:
				case code == sendOK && now.After(countFrom):
					p.ackedAfter++
				case code == protocol.SendBrokerReadOnly && (p.fencedAt.IsZero() || now.Before(p.fencedAt)):
					p.fencedAt, p.remark = now, remark
				}
			}()
		}
	}()
	return p
}

func (p *fenceProbe) fenced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.fencedAt.IsZero()
}

// stop ends the sends and returns what they saw.
func (p *fenceProbe) stop() (fencedAt time.Time, ackedAfter int, remark string) {
	p.stopSends()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fencedAt, p.ackedAfter, p.remark
}
