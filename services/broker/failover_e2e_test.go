package broker

// Failover end to end with real processes: the brokers of group g1 run as
// subprocesses (this test binary re-executed, see failoverHelper) so that
// the master can be killed with SIGKILL; the metaserver runs in-process and
// producers and consumers are the Go client.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/consumetest"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
)

const failoverHelperEnv = "QMQ_FAILOVER_HELPER"

// failoverHelper runs one broker until SIGTERM (the subprocess side).
func failoverHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := hclog.New(&hclog.LoggerOptions{Name: os.Getenv("QMQ_FAILOVER_HOST"), Level: hclog.Info, Output: os.Stderr})
	settings, keys, err := LoadSettings(os.Getenv("QMQ_FAILOVER_CONF"), conf.Lookup{Env: noEnv})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	keys.Log(log)
	srv, err := New(ctx, settings, Options{Logger: log, Hostname: os.Getenv("QMQ_FAILOVER_HOST")})
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

// procBroker is a broker subprocess with a fixed identity and store.
type procBroker struct {
	t    *testing.T
	host string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	out  *testlog.Buffer
	port int // broker.port
}

func newProcBroker(t *testing.T, m *metaHarness, group, host string, role, port, syncPort int, sets ...string) *procBroker {
	t.Helper()
	return newProcBrokerVia(t, m, procNet{}, group, host, role, port, syncPort, sets...)
}

// procNet routes a broker subprocess through test proxies: registeredSync
// (non-zero) is the sync port registered at the metaserver, which the
// slave dials, instead of the one the broker binds; metaEndpoint replaces
// meta.server.endpoint.
type procNet struct {
	registeredSync int
	metaEndpoint   string
}

func newProcBrokerVia(t *testing.T, m *metaHarness, via procNet, group, host string, role, port, syncPort int, sets ...string) *procBroker {
	t.Helper()
	dir := t.TempDir()
	endpoint, regSync := m.endpoint(), syncPort
	if via.metaEndpoint != "" {
		endpoint = via.metaEndpoint
	}
	if via.registeredSync != 0 {
		regSync = via.registeredSync
	}
	props := fmt.Sprintf("meta.server.endpoint=%s\nbroker.port=%d\nsync.port=%d\nbroker.http.port=-1\nmeta.retry.interval.ms=100\nbroker.heartbeat.interval.ms=200\n"+
		"message.retry.delay.seconds=0\nstore.root=%s\nbroker.advertise.ip=127.0.0.1\nsubject.route.check.enable=false\n",
		endpoint, port, syncPort, filepath.Join(dir, "store"))
	for _, s := range sets {
		props += s + "\n"
	}
	writeFile(t, filepath.Join(dir, FileBroker), props)
	m.AddBrokerPorts(group, role, host, port, regSync)
	b := &procBroker{t: t, host: host, dir: dir, out: &testlog.Buffer{}, port: port}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", host, b.out.String())
		}
	})
	return b
}

func (b *procBroker) root() string { return filepath.Join(b.dir, "store") }

func (b *procBroker) waitLog(what string, timeout time.Duration) time.Time {
	b.t.Helper()
	testutil.Eventually(b.t, timeout, b.host+" logs "+what, func() bool { return bytes.Contains([]byte(b.out.String()), []byte(what)) })
	return time.Now()
}

func (b *procBroker) start() {
	b.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), failoverHelperEnv+"=1", "QMQ_FAILOVER_CONF="+b.dir, "QMQ_FAILOVER_HOST="+b.host)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(b.done)
}

// kill is kill -9.
func (b *procBroker) kill() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	<-b.done
	b.cmd = nil
}

// stop is a clean shutdown (SIGTERM).
func (b *procBroker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		b.t.Errorf("%s did not stop within 15s", b.host)
		b.kill()
	}
	b.cmd = nil
}

// loadResult is what a producer run saw.
type loadResult struct {
	mu        sync.Mutex
	acked     []string
	lastFail  time.Time
	firstOKAt time.Time // first acknowledged send after mark
	mark      time.Time
}

// produce sends one message at a time until ctx ends, recording acks.
func produce(ctx context.Context, t *testing.T, p *client.Producer, subject string, res *loadResult) {
	for i := 0; ctx.Err() == nil; i++ {
		m := p.NewMessage(subject)
		err := p.Send(ctx, m)
		now := time.Now()
		res.mu.Lock()
		if err == nil {
			res.acked = append(res.acked, m.ID())
			if !res.mark.IsZero() && res.firstOKAt.IsZero() {
				res.firstOKAt = now
			}
		} else {
			res.lastFail = now
		}
		res.mu.Unlock()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (r *loadResult) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// startConsumer subscribes before the load starts (a new consumer group
// begins at the subject's next message); the returned func checks that
// every given id is consumed.
func startConsumer(t *testing.T, endpoint, subject string) func(ids []string, timeout time.Duration) {
	t.Helper()
	r := consumetest.Start(t, endpoint, subject, "fo-group")
	return func(ids []string, timeout time.Duration) {
		t.Helper()
		testutil.Eventually(t, timeout, fmt.Sprintf("all %d acknowledged messages consumed", len(ids)), func() bool {
			n, _ := r.Missing(ids)
			return n == 0
		})
	}
}

// sameLogs waits until both stores' message and action logs are byte-identical.
func sameLogs(t *testing.T, a, b string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, "logs byte-identical", func() bool {
		for _, l := range []string{"messagelog", "actionlog"} {
			if !bytes.Equal(trimZeros(logFiles(t, a, l)), trimZeros(logFiles(t, b, l))) {
				return false
			}
		}
		return true
	})
}

func trimZeros(b []byte) []byte { return bytes.TrimRight(b, "\x00") }

func failoverSets(auto bool) []string {
	sets := []string{"wait.slave.wrote=true", "wait.slave.wrote.timeout.ms=1000", "failover.lease.ttl.ms=1500", "failover.master.timeout.ms=1000",
		"messagelog.segment.size=4194304", "actionlog.segment.size=1048576"}
	return append(sets, "failover.enable="+strconv.FormatBool(auto))
}

// runFailover: master A and slave B under load; A is killed with SIGKILL at a
// random point; the group fails over (by itself, or by the runbook: stop B,
// SwapMasterSlave, start B); every acknowledged message is consumed; A
// returns, rejoins as slave and its logs become identical to B's.
func runFailover(t *testing.T, auto bool, seed uint64) {
	runFailoverWith(t, failoverRun{auto: auto, seed: seed})
}

// failoverRun varies runFailover: extra keys for g1's brokers, a check
// while A is master under load, and the longest wait for the promotion.
type failoverRun struct {
	auto        bool
	seed        uint64
	sets        []string
	beforeKill  func(a, b *procBroker)
	promoteWait time.Duration
}

func runFailoverWith(t *testing.T, run failoverRun) {
	auto, seed := run.auto, run.seed
	if run.promoteWait == 0 {
		run.promoteWait = 20 * time.Second
	}
	m := startMeta(t)
	ports := testutil.FreePorts(t, 6)
	a := newProcBroker(t, m, "g1", "fo-a", 0, ports[0], ports[1], append(failoverSets(auto), run.sets...)...)
	b := newProcBroker(t, m, "g1", "fo-b", 1, ports[2], ports[3], append(failoverSets(auto), run.sets...)...)
	c := newProcBroker(t, m, "g2", "fo-c", 0, ports[4], ports[5])
	a.start()
	b.start()
	c.start()
	a.waitLog("broker online", 20*time.Second)
	c.waitLog("broker online", 20*time.Second)
	subject := "fo.subject"
	consumed := startConsumer(t, m.endpoint(), subject)
	time.Sleep(time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := client.NewProducer(ctx, m.endpoint(), client.WithSendTimeout(2*time.Second), client.WithRouteRefresh(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	res := &loadResult{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); produce(ctx, t, p, subject, res) }()

	killAt := 50 + rand.New(rand.NewPCG(seed, 1)).IntN(300)
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%d acknowledged sends", killAt), func() bool { return res.count() >= killAt })
	if run.beforeKill != nil {
		run.beforeKill(a, b)
	}
	a.kill()
	killed := time.Now()
	res.mu.Lock()
	res.mark = killed
	before := len(res.acked)
	res.mu.Unlock()
	var promoted time.Time
	if auto {
		promoted = b.waitLog("this slave took over as the group's master", run.promoteWait)
	} else {
		b.stop()
		if _, err := m.admin().SwapMasterSlave(context.Background(), "g1"); err != nil {
			t.Fatal(err)
		}
		b.start()
	}
	b.waitLog("broker online", 20*time.Second)
	online := time.Now()
	testutil.Eventually(t, 30*time.Second, "sends acknowledged again after the master died", func() bool { return res.count() >= before+50 })
	res.mu.Lock()
	promotion := "manual: SwapMasterSlave and a restart"
	if auto {
		promotion = fmt.Sprintf("promotion logged %v after", promoted.Sub(killed).Round(time.Millisecond))
	}
	t.Logf("seed %d auto=%v: master killed after %d acks; producers (2 groups) succeeded again %v after the kill; new master of g1 online %v after (%s)",
		seed, auto, before, res.firstOKAt.Sub(killed).Round(time.Millisecond), online.Sub(killed).Round(time.Millisecond), promotion)
	res.mu.Unlock()

	// The old master returns: it must rejoin as the slave.
	a.start()
	a.waitLog("caught up with the master", 30*time.Second)
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	res.mu.Lock()
	ids := append([]string(nil), res.acked...)
	res.mu.Unlock()
	consumed(ids, 60*time.Second)
	sameLogs(t, b.root(), a.root(), 30*time.Second)
	for _, pb := range []*procBroker{a, b} {
		for _, line := range bytes.Split([]byte(pb.out.String()), []byte("\n")) {
			if bytes.Contains(line, []byte("cut the tail")) || bytes.Contains(line, []byte("rejoin")) || bytes.Contains(line, []byte("took over")) || bytes.Contains(line, []byte("broker meta acquired")) {
				t.Logf("%s", line)
			}
		}
	}
}

func failoverIterations() int {
	if os.Getenv("QMQ_LONG_TESTS") == "1" {
		return 20
	}
	return 1
}

func TestFailoverAutoKillMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess failover test")
	}
	for i := range failoverIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) { runFailover(t, true, uint64(time.Now().UnixNano())+uint64(i)) })
	}
}

func TestFailoverManualKillMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess failover test")
	}
	for i := range failoverIterations() {
		t.Run(strconv.Itoa(i), func(t *testing.T) { runFailover(t, false, uint64(time.Now().UnixNano())+uint64(i)) })
	}
}
