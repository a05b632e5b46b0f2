package client_test

// End-to-end harness: a real in-process metaserver, brokers running as
// separate processes (this test binary re-executed in a helper mode, so a
// test can kill -9 them), and consumers in-process or as subprocesses.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// Helper process modes (environment variable e2eHelperEnv).
const (
	e2eHelperEnv   = "QMQ_E2E_HELPER"
	helperBroker   = "broker"
	helperConsumer = "consumer"
)

// Consumer options used by every in-process e2e consumer: short long polls
// and heartbeats so the brokers' small subscriber.offline.timeout.ms never
// mistakes a live consumer for a dead one, quick acks and route refreshes.
func e2eConsumerOpts(t *testing.T, extra ...client.ConsumerOption) []client.ConsumerOption {
	return append([]client.ConsumerOption{
		client.WithPullTimeout(400 * time.Millisecond), client.WithHeartbeat(300 * time.Millisecond),
		client.WithAckFlushInterval(100 * time.Millisecond), client.WithRouteRefresh(time.Second),
		client.WithCloseWait(3 * time.Second), client.WithLogger(e2eLogger(t, "client")),
	}, extra...)
}

// ---------------------------------------------------------------- logging

func e2eLogger(t *testing.T, name string) hclog.Logger {
	return testlog.Logger(t, name, hclog.Warn)
}

// ---------------------------------------------------------------- cluster

// cluster is one metaserver (min.group.num=2, the default) and its brokers.
type cluster struct {
	t        *testing.T
	metaHTTP string // host:port of the metaserver's HTTP endpoint
	meta     *metatest.Server
	endpoint string // meta.server.endpoint for clients and brokers
	brokers  []*brokerProc
}

// newCluster starts a metaserver and n broker groups (one master each,
// separate processes), and waits until all are online. sets are extra
// broker.properties lines.
func newCluster(t *testing.T, n int, sets ...string) *cluster {
	t.Helper()
	metaSrv := metatest.Start(t, e2eLogger(t, "meta"))
	c := &cluster{t: t, meta: metaSrv, metaHTTP: metaSrv.HTTP()}
	c.endpoint = "http://" + c.metaHTTP + "/meta/address"
	for i := 1; i <= n; i++ {
		c.brokers = append(c.brokers, c.newBroker(fmt.Sprintf("e2e-g%d", i), fmt.Sprintf("e2e-host-%d", i), sets...))
	}
	for _, b := range c.brokers {
		b.start()
	}
	for _, b := range c.brokers {
		b.waitOnline()
	}
	return c
}

// addBroker registers a master with the metaserver as `qmq tools AddBroker` does.
func (c *cluster) addBroker(group, host string, port int) { c.meta.AddBroker(group, 0, host, port) }

// route asks the metaserver for the broker groups of subject, as a producer.
func (c *cluster) route(subject string) []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, c.endpoint)
	if err != nil {
		c.t.Fatal(err)
	}
	mc, err := meta.Dial(ctx, addr)
	if err != nil {
		c.t.Fatal(err)
	}
	defer mc.Close()
	resp, err := mc.RegisterClient(ctx, protocol.ClientRegisterRequest{Subject: subject, ClientTypeCode: protocol.ClientTypeProducer,
		AppCode: "e2e", ClientID: "e2e-route-check", RequestType: protocol.ClientRequestOnline})
	if err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, g := range resp.Groups {
		names = append(names, g.Name)
	}
	return names
}

// requireTwoGroups fails unless subject is routed to two broker groups.
func (c *cluster) requireTwoGroups(subject string) {
	c.t.Helper()
	if g := c.route(subject); len(g) != 2 {
		c.t.Fatalf("subject %s routed to %v; want 2 broker groups (min.group.num=2)", subject, g)
	}
}

func (c *cluster) producer(ctx context.Context) *client.Producer {
	c.t.Helper()
	p, err := client.NewProducer(ctx, c.endpoint, client.WithRouteRefresh(time.Second), client.WithSendTimeout(3*time.Second),
		client.WithLogger(e2eLogger(c.t, "producer")), client.WithAppCode("e2e"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// ---------------------------------------------------------------- brokers

// brokerProc is a broker running in a child process; restart keeps its
// conf dir, store.root and port.
type brokerProc struct {
	c      *cluster
	group  string
	host   string
	dir    string // conf dir; the store is dir/store
	port   int
	logs   *testlog.Buffer // all runs' stderr
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	portCh chan int
	online chan struct{}
	exited chan struct{}
	runs   int
}

func (c *cluster) newBroker(group, host string, sets ...string) *brokerProc {
	dir := c.t.TempDir()
	props := strings.Join(append([]string{
		"meta.server.endpoint=" + c.endpoint,
		"broker.advertise.ip=127.0.0.1",
		"meta.retry.interval.ms=100",
		"broker.heartbeat.interval.ms=500",
		"message.retry.delay.seconds=1",
		"subscriber.offline.timeout.ms=1500",
		"put_need_retry_message.limiter=10000",
		"flush.interval.ms=10",
		"store.root=" + filepath.Join(dir, "store"),
	}, sets...), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, broker.FileBroker), []byte(props), 0o644); err != nil {
		c.t.Fatal(err)
	}
	b := &brokerProc{c: c, group: group, host: host, dir: dir, logs: &testlog.Buffer{}}
	c.t.Cleanup(func() {
		b.kill()
		if c.t.Failed() {
			c.t.Logf("---- broker %s log ----\n%s", group, tail(b.logs.String(), 20000))
		}
	})
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// start launches the broker process; the first start registers its port
// with the metaserver.
func (b *brokerProc) start() {
	t := b.c.t
	t.Helper()
	b.runs++
	cmd := exec.Command(os.Args[0], "-test.run=^TestE2EHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), e2eHelperEnv+"="+helperBroker, "QMQ_E2E_CONF="+b.dir, "QMQ_E2E_HOST="+b.host,
		"QMQ_E2E_PORT="+strconv.Itoa(b.port))
	fmt.Fprintf(b.logs, "==== run %d ====\n", b.runs)
	cmd.Stderr = b.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.cmd = cmd
	b.portCh, b.online, b.exited = make(chan int, 1), make(chan struct{}), make(chan struct{})
	portCh, online, exited := b.portCh, b.online, b.exited
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "E2E-PORT "):
				p, _ := strconv.Atoi(strings.TrimPrefix(line, "E2E-PORT "))
				portCh <- p
			case line == "E2E-ONLINE":
				close(online)
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case p := <-portCh:
		if b.port == 0 {
			b.port = p
			b.c.addBroker(b.group, b.host, p)
		}
	case <-exited:
		t.Fatalf("broker %s exited at start-up:\n%s", b.group, tail(b.logs.String(), 5000))
	case <-time.After(20 * time.Second):
		t.Fatalf("broker %s did not start:\n%s", b.group, tail(b.logs.String(), 5000))
	}
}

func (b *brokerProc) waitOnline() {
	t := b.c.t
	t.Helper()
	select {
	case <-b.online:
	case <-b.exited:
		t.Fatalf("broker %s exited:\n%s", b.group, tail(b.logs.String(), 5000))
	case <-time.After(20 * time.Second):
		t.Fatalf("broker %s not online:\n%s", b.group, tail(b.logs.String(), 5000))
	}
}

// kill9 kills the broker process with SIGKILL and waits for it to be gone.
func (b *brokerProc) kill9() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill() // SIGKILL
	<-b.exited
	b.cmd = nil
}

func (b *brokerProc) kill() { b.kill9() }

// ---------------------------------------------------------------- helper processes

// TestE2EHelperProcess is not a test: it is the body of the child
// processes the e2e tests start (a broker, or a consumer that never acks).
func TestE2EHelperProcess(t *testing.T) {
	switch os.Getenv(e2eHelperEnv) {
	case "":
		t.Skip("helper process for the e2e tests")
	case helperBroker:
		os.Exit(brokerHelper())
	case helperConsumer:
		os.Exit(consumerHelper())
	}
}

var stdoutMu sync.Mutex

func say(format string, args ...any) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// exitOnStdinEOF ends the process when the parent closes stdin or dies.
func exitOnStdinEOF(f func()) {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		f()
	}()
}

func brokerHelper() int {
	log := hclog.New(&hclog.LoggerOptions{Name: "broker", Output: os.Stderr, Level: hclog.Info})
	o, err := conf.ParseSet([]string{"broker.port=" + os.Getenv("QMQ_E2E_PORT"), "sync.port=0", "broker.http.port=0"})
	if err != nil {
		log.Error("overrides", "error", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	settings, keys, err := broker.LoadSettings(os.Getenv("QMQ_E2E_CONF"), conf.Lookup{Overrides: o, Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		log.Error("settings", "error", err)
		return 2
	}
	keys.Log(log)
	srv, err := broker.New(ctx, settings, broker.Options{Logger: log, Hostname: os.Getenv("QMQ_E2E_HOST")})
	if err != nil {
		log.Error("start", "error", err)
		return 2
	}
	say("E2E-PORT %d", srv.Port())
	exitOnStdinEOF(cancel)
	go func() {
		for !srv.Online() {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		say("E2E-ONLINE")
	}()
	if err := srv.Run(ctx); err != nil {
		log.Error("run", "error", err)
		return 1
	}
	return 0
}

// consumerHelper consumes QMQ_E2E_SUBJECT as QMQ_E2E_GROUP and never
// acknowledges: each handler call prints the message id and blocks.
func consumerHelper() int {
	log := hclog.New(&hclog.LoggerOptions{Name: "victim", Output: os.Stderr, Level: hclog.Warn})
	ctx := context.Background()
	c, err := client.NewConsumer(ctx, os.Getenv("QMQ_E2E_META"), os.Getenv("QMQ_E2E_SUBJECT"), os.Getenv("QMQ_E2E_GROUP"),
		client.WithClientID(os.Getenv("QMQ_E2E_CLIENTID")), client.WithConcurrency(2), client.WithPullBatch(5),
		client.WithPullTimeout(400*time.Millisecond), client.WithHeartbeat(300*time.Millisecond), client.WithLogger(log))
	if err != nil {
		log.Error("consumer", "error", err)
		return 2
	}
	exitOnStdinEOF(func() { os.Exit(0) }) // abrupt: nothing is acknowledged
	say("E2E-READY")
	block := make(chan struct{})
	_ = c.Run(ctx, func(ctx context.Context, m *client.Message) error {
		say("E2E-GOT %s %s", m.ID(), m.Property(probeProp))
		if m.Property(probeProp) != "" {
			return nil // probes are acknowledged
		}
		<-block
		return nil
	})
	return 0
}

// ---------------------------------------------------------------- consuming

// tally counts deliveries per message id, per consumer, and probes.
type tally struct {
	mu     sync.Mutex
	counts map[string]int            // id -> deliveries (probes excluded)
	by     map[string]map[string]int // consumer -> id -> deliveries
	times  map[string][]int          // id -> Times() of each delivery
	probes map[string]map[string]bool
}

func newTally() *tally {
	return &tally{counts: map[string]int{}, by: map[string]map[string]int{}, times: map[string][]int{}, probes: map[string]map[string]bool{}}
}

const probeProp = "e2e_probe"

// record notes a delivery to consumer who; it returns false for probes.
func (t *tally) record(who string, m *client.Message) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m.Property(probeProp) != "" {
		if t.probes[who] == nil {
			t.probes[who] = map[string]bool{}
		}
		t.probes[who][m.ID()] = true
		return false
	}
	t.counts[m.ID()]++
	if t.by[who] == nil {
		t.by[who] = map[string]int{}
	}
	t.by[who][m.ID()]++
	t.times[m.ID()] = append(t.times[m.ID()], m.Times())
	return true
}

func (t *tally) sawProbe(who, id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.probes[who][id]
}

func (t *tally) count(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[id]
}

func (t *tally) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.counts)
}

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.counts {
		n += c
	}
	return n
}

func (t *tally) of(who string) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.by[who] {
		out[k] = v
	}
	return out
}

// hasAll reports whether every id was delivered at least once.
func (t *tally) hasAll(ids []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if t.counts[id] == 0 {
			return false
		}
	}
	return true
}

func (t *tally) missing(ids []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, id := range ids {
		if t.counts[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// runConsumer runs c.Run(handler) until the test ends (or stop is called).
func runConsumer(t *testing.T, c *client.Consumer, handler func(context.Context, *client.Message) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, handler) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newConsumer(t *testing.T, c *cluster, subject, group string, opts ...client.ConsumerOption) *client.Consumer {
	t.Helper()
	cons, err := client.NewConsumer(context.Background(), c.endpoint, subject, group, e2eConsumerOpts(t, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	return cons
}

// prime makes sure the consumers have pulled from every broker group
// before the test sends (a group seen for the first time starts at the
// subject's latest message): it sends probes, one per Send so that the
// producer's round robin alternates groups, until four in a row were seen
// by every consumer that seen checks.
func prime(t *testing.T, p *client.Producer, subject string, tags []string, seen func(id string) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	inARow := 0
	for inARow < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("consumers of %s never received probes", subject)
		}
		m := p.NewMessage(subject).SetProperty(probeProp, "1")
		for _, tg := range tags {
			m.AddTag(tg)
		}
		// SendAsConsumer: probes may go to a dead-letter subject, which
		// Producer.Send refuses.
		if err := client.SendAsConsumer(context.Background(), p, m); err != nil {
			t.Fatalf("send probe: %v", err)
		}
		got := false
		for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if seen(m.ID()) {
				got = true
				break
			}
		}
		if got {
			inARow++
		} else {
			inARow = 0
		}
	}
}

// sendMixed sends n messages to subject, alternating synchronous batches
// and SendAsync, and returns their ids once every one is acknowledged.
func sendMixed(t *testing.T, p *client.Producer, subject string, n int, decorate func(i int, m *client.Message)) []string {
	t.Helper()
	ids := make([]string, 0, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var asyncErrs []error
	var batch []*client.Message
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := p.Send(context.Background(), batch...); err != nil {
			t.Fatalf("Send: %v", err)
		}
		batch = nil
	}
	for i := 0; i < n; i++ {
		m := p.NewMessage(subject).SetBody("message "+strconv.Itoa(i)).SetProperty("e2e_seq", strconv.Itoa(i))
		if decorate != nil {
			decorate(i, m)
		}
		ids = append(ids, m.ID())
		switch i % 4 {
		case 0, 1: // synchronous, in batches of up to 2
			batch = append(batch, m)
			if len(batch) == 2 {
				flush()
			}
		default:
			wg.Add(1)
			if err := p.SendAsync(m, func(_ *client.Message, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					asyncErrs = append(asyncErrs, err)
					mu.Unlock()
				}
			}); err != nil {
				t.Fatalf("SendAsync: %v", err)
			}
		}
	}
	flush()
	wg.Wait()
	if len(asyncErrs) > 0 {
		t.Fatalf("%d async sends failed, first: %v", len(asyncErrs), asyncErrs[0])
	}
	return ids
}
