package delay

// The delay pair with real processes: both delay servers run as
// subprocesses (this test binary re-executed, procHelper) so that the
// master can be killed with SIGKILL; the metaserver and the real-time
// broker run in-process.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

const procHelperEnv = "QMQ_DELAY_PROC_HELPER"

// procHelper runs one delay server until SIGTERM (the subprocess side).
func procHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	host := os.Getenv("QMQ_DELAY_PROC_HOST")
	log := hclog.New(&hclog.LoggerOptions{Name: host, Level: hclog.Info, Output: os.Stderr})
	settings, _, err := LoadSettings(os.Getenv("QMQ_DELAY_PROC_CONF"), conf.Lookup{Env: noEnv})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv, err := New(ctx, settings, Options{Logger: log, Hostname: host})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// procDelay is a delay server subprocess with a fixed identity and store.
type procDelay struct {
	t    *testing.T
	host string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	out  *testlog.Buffer
	port int
}

func newProcDelay(t *testing.T, m *metatest.Server, host string, role int, sets ...string) *procDelay {
	t.Helper()
	ports := testutil.FreePorts(t, 2)
	dir := t.TempDir()
	props := fmt.Sprintf("meta.server.endpoint=%s\nbroker.port=%d\nsync.port=%d\ndelay.http.port=-1\nmeta.retry.interval.ms=100\nbroker.heartbeat.interval.ms=200\n"+
		"store.root=%s\ndelay.advertise.ip=127.0.0.1\nper.segment.file.size=16777216\ndelay.send.retry.min.ms=50\ndelay.send.retry.max.ms=500\n"+
		"sync.secret=delay-pair-secret\nwait.slave.wrote=true\n",
		m.Endpoint(), ports[0], ports[1], filepath.Join(dir, "store"))
	props += strings.Join(sets, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, FileDelay), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	m.AddBrokerPorts(delayGroup, role, host, ports[0], ports[1])
	p := &procDelay{t: t, host: host, dir: dir, out: &testlog.Buffer{}, port: ports[0]}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", host, p.out.String())
		}
	})
	return p
}

func (p *procDelay) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), procHelperEnv+"=1", "QMQ_DELAY_PROC_CONF="+p.dir, "QMQ_DELAY_PROC_HOST="+p.host)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.done)
}

// kill is kill -9.
func (p *procDelay) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

func (p *procDelay) waitLog(what string, timeout time.Duration) time.Time {
	p.t.Helper()
	testutil.Eventually(p.t, timeout, p.host+" logs "+what, func() bool { return bytes.Contains([]byte(p.out.String()), []byte(what)) })
	return time.Now()
}

func (p *procDelay) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// trySend is one SEND_MESSAGE; an error means no answer (the outcome is unknown).
func trySend(addr string, msgs []protocol.Message) ([]protocol.SendResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, protocol.DefaultMaxFrameSize)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var body []byte
	for i := range msgs {
		if body, err = protocol.AppendMessage(body, &msgs[i]); err != nil {
			return nil, err
		}
	}
	resp, err := c.Call(ctx, protocol.CodeSendMessage, body)
	if err != nil {
		return nil, err
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return nil, fmt.Errorf("SEND_MESSAGE answered %s", protocol.CodeName(resp.Header.Code, true))
	}
	return protocol.DecodeSendResults(resp.Body)
}

// TestDelayKill9Failover: a producer sends delay messages (due 2 s after
// sending) to the master, with wait.slave.wrote, until the master is
// killed with SIGKILL; the slave takes over — after a manual swap
// (client/admin SwapMasterSlave), or on its own once the master's lease
// expired (failover.enable) — exits on its promotion, is started again as
// its supervisor would, and every message the master acknowledged reaches
// the consumer. Duplicates are counted: messages the old master sent whose
// dispatch record had not reached the slave.
func TestDelayKill9Failover(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocesses")
	}
	t.Run("manual", func(t *testing.T) { runKill9(t, false) })
	t.Run("lease", func(t *testing.T) { runKill9(t, true) })
	// The lease as a Consul session lock (services/lease, as a broker's):
	// the killed master's session goes when its health check does; the
	// slave takes the lock, is promoted, releases the lock as it stops and
	// takes it again started as master.
	t.Run("consul", func(t *testing.T) {
		agent := consultest.Agent(t)
		runKill9(t, true, "consul.address="+agent.HTTPAddr, "failover.consul.session.ttl.ms=10000",
			"failover.consul.lock.delay.ms=500", "failover.consul.key.prefix=qmq-test/"+t.Name()+"/")
	})
}

// runKill9 runs the kill -9 failover with the lease when auto, with extra
// delay.properties lines (the Consul lease: consul.address among them).
func runKill9(t *testing.T, auto bool, extra ...string) {
	m := startMeta(t)
	startBroker(t, m)
	const subject = "delay.repl.kill9"
	col := consume(t, m.Endpoint(), subject)
	var sets []string
	if auto {
		sets = []string{"failover.enable=true", "failover.lease.ttl.ms=1500", "failover.master.timeout.ms=500"}
	}
	sets = append(sets, extra...)
	consulLease := len(extra) > 0
	master := newProcDelay(t, m, delayHost, int(protocol.RoleDelayMaster), sets...)
	slave := newProcDelay(t, m, slaveHost, int(protocol.RoleDelaySlave), sets...)
	master.start()
	slave.start()
	master.waitLog("delay server online", 15*time.Second)
	slave.waitLog("connected to the master", 15*time.Second)

	var (
		mu               sync.Mutex
		acked            []string
		busy, unanswered int
	)
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; ctx.Err() == nil; i++ {
			var batch []protocol.Message
			due := time.Now().Add(2 * time.Second).UnixMilli()
			for j := range 10 {
				batch = append(batch, delayMessage(subject, fmt.Sprintf("%s-%04d-%d", subject, i, j), due))
			}
			rs, err := trySend(master.addr(), batch)
			mu.Lock()
			if err != nil {
				unanswered += len(batch)
			} else {
				failed := map[string]bool{}
				for _, r := range rs {
					failed[r.MessageID] = true
				}
				busy += len(rs)
				for _, msg := range batch {
					if !failed[msg.MessageID] {
						acked = append(acked, msg.MessageID)
					}
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(4 * time.Second)
	before := len(col.snapshot())
	killed := time.Now()
	master.kill()
	time.Sleep(200 * time.Millisecond) // sends in flight fail
	cancel()
	<-sent

	want := "this slave took over"
	if !auto {
		want = "now registers this delay server as DELAY_MASTER"
		if _, err := admin.New(m.HTTP(), metatest.Token).SwapMasterSlave(context.Background(), delayGroup); err != nil {
			t.Fatalf("SwapMasterSlave: %v", err)
		}
	}
	select {
	case <-slave.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the slave process did not exit on its promotion")
	}
	if !strings.Contains(slave.out.String(), want) {
		t.Fatalf("the slave exited without saying %q", want)
	}
	promoted := time.Now()
	slave.cmd = nil
	slave.start() // as its supervisor would
	online := slave.waitLog("delay server online", 15*time.Second)
	if consulLease {
		if held := lastLine(slave.out.String(), "delay master lease held"); !strings.Contains(held, "lease=\"consul ") {
			t.Fatalf("the new master does not hold the consul lease: %q", held)
		}
		if !strings.Contains(master.out.String(), "consul lock acquired") {
			t.Fatalf("the first master never held the consul lock")
		}
	}

	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	col.waitFor(t, 60*time.Second, ids...)
	delivered := time.Now()
	dups := 0
	col.mu.Lock()
	for _, id := range ids {
		dups += col.count[id] - 1
	}
	col.mu.Unlock()
	t.Logf("%d acknowledged (%d BROKER_BUSY, %d unanswered at the kill); %d delivered before the kill; kill -9 to promotion %v, to new master online %v; all acknowledged delivered %v after the kill; duplicates %d",
		len(ids), busy, unanswered, before, promoted.Sub(killed).Round(time.Millisecond), online.Sub(killed).Round(time.Millisecond), delivered.Sub(killed).Round(time.Millisecond), dups)
	if len(ids) < 500 {
		t.Errorf("only %d messages acknowledged: the load did not run", len(ids))
	}

	// The killed master starts again, now registered as the slave: it
	// copies if its logs end within the takeover point; past it it cuts its
	// tail and stops to be started again. The new master recorded its term
	// and takeover point at start, after a lease promotion and after a
	// manual swap alike (recordTerm), so no store.root has to be deleted.
	master.start()
	testutil.Eventually(t, 15*time.Second, "the former master to rejoin, cut or explain", func() bool {
		out := master.out.String()
		return strings.Contains(out, "connected to the master") || strings.Contains(out, "delete its store.root") ||
			strings.Contains(out, "start the server again to copy the new master")
	})
	switch out := master.out.String(); {
	case strings.Contains(out, "start the server again to copy the new master"):
		<-master.done
		master.cmd = nil
		t.Logf("the former master cut its unreplicated tail: %s", lastLine(out, "cut the tail"))
		master.start()
	case strings.Contains(out, "delete its store.root"):
		// Each master records its term at start, also without failover
		// (recordTerm): the manual swap's takeover point is known.
		t.Fatalf("the former master asks for its store.root to be deleted: %s", lastLine(out, "delete its store.root"))
	default:
		t.Logf("the former master rejoined with its store: %s", lastLine(out, "rejoins as slave"))
	}
	master.waitLog("caught up with the master", 20*time.Second)
}

// lastLine is the last line of out containing s.
func lastLine(out, s string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
