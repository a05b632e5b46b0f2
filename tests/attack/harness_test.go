package attack

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/consumetest"
)

// qmqBin is the binary under attack, built once by TestMain.
var qmqBin string

// QMQ_ATTACK_BINARY names a prebuilt qmq to attack instead of building
// this tree's (to measure another build, such as a release before a fix).
const binaryEnv = "QMQ_ATTACK_BINARY"

func TestMain(m *testing.M) {
	if bin := os.Getenv(binaryEnv); bin != "" {
		qmqBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "qmq-attack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qmqBin = filepath.Join(dir, "qmq")
	build := exec.Command("go", "build", "-o", qmqBin, "github.com/qmq-go/qmq/cmd/qmq")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "attack: building qmq:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// target is one running `qmq dev --slave` and its ports.
type target struct {
	t   *testing.T
	cmd *exec.Cmd
	log *syncBuffer

	metaHTTP, metaTCP           int
	broker, sync, brokerHTTP    int
	slave, slaveSync, slaveHTTP int
	delay, delayHTTP            int // the dev delay server (its sync port is not served)
}

// endpoint is the metaserver's discovery URL.
func (tg *target) endpoint() string {
	return fmt.Sprintf("http://127.0.0.1:%d/meta/address", tg.metaHTTP)
}

// tcpPorts are the ports that speak QMQ's binary protocol.
func (tg *target) tcpPorts() map[string]int {
	// A slave serves no sync port until it becomes the master.
	return map[string]int{"metaserver tcp": tg.metaTCP, "broker": tg.broker, "broker sync": tg.sync, "slave broker": tg.slave, "delay": tg.delay}
}

// httpPorts are the HTTP ports.
func (tg *target) httpPorts() map[string]int {
	return map[string]int{"metaserver http": tg.metaHTTP, "broker http": tg.brokerHTTP, "slave http": tg.slaveHTTP, "delay http": tg.delayHTTP}
}

// syncBuffer is a log sink safe for the process's two output pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// portBlock finds a base port p such that p..p+12 are free (qmq dev puts the
// slave at broker port + 10, + 11, + 12), two more free ports for the
// metaserver and p+15..p+17 for the delay server (--delay-port, + 1 sync, + 2 http).
func portBlock(t *testing.T) (base, metaHTTP, metaTCP int) {
	t.Helper()
	free := func(p int) bool {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		_ = ln.Close()
		return true
	}
	for range 200 {
		base = 20000 + rand.IntN(30000)
		ok := true
		for p := base; p <= base+17 && ok; p++ {
			ok = free(p)
		}
		if ok {
			return base, base + 13, base + 14
		}
	}
	t.Fatal("no block of 18 free ports found")
	return
}

// startTarget runs `qmq dev --slave` with env (KEY=value, e.g. QMQ_* config
// overrides) and waits until it serves.
func startTarget(t *testing.T, env ...string) *target {
	t.Helper()
	return startTargetLimited(t, 0, env...)
}

// startTargetLimited is startTarget with the process's file descriptor
// limit set to fileLimit (0: inherited).
func startTargetLimited(t *testing.T, fileLimit int, env ...string) *target {
	t.Helper()
	base, mh, mt := portBlock(t)
	tg := &target{t: t, log: &syncBuffer{}, metaHTTP: mh, metaTCP: mt,
		broker: base, sync: base + 1, brokerHTTP: base + 2, slave: base + 10, slaveSync: base + 11, slaveHTTP: base + 12,
		delay: base + 15, delayHTTP: base + 17}
	args := []string{"dev", "--slave", "--data", t.TempDir(), "--log-level", "warn",
		"--meta-http-port=" + strconv.Itoa(mh), "--meta-port=" + strconv.Itoa(mt), "--broker-port=" + strconv.Itoa(base),
		"--delay-port=" + strconv.Itoa(base+15), "--backup-http=-1", "--console=off"}
	cmd := exec.Command(qmqBin, args...)
	if fileLimit > 0 {
		// The shell sets the limit and execs qmq in its place (same pid).
		cmd = exec.Command("/bin/sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, fileLimit), "sh", qmqBin}, args...)...)
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = tg.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("qmq dev log:\n%s", tg.log.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			tg.log.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, "qmq dev is running") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("qmq dev exited before serving:\n%s", tg.log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("qmq dev did not serve within 60s:\n%s", tg.log.String())
	}
	// The broker registers after the banner: a send answered (the master
	// waits for the slave) says both are serving.
	p, err := client.NewProducer(context.Background(), tg.endpoint())
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close(context.Background())
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.Send(ctx, p.NewMessage("attack.warmup"))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send answered within 60s of the start: %v\n%s", err, tg.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return tg
}

// alive fails the test if the process has exited.
func (tg *target) alive() {
	tg.t.Helper()
	if err := tg.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		tg.t.Fatalf("qmq dev is no longer running: %v", err)
	}
}

// rss is the process's resident set in bytes (VmRSS).
func (tg *target) rss() int64 {
	tg.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.cmd.Process.Pid))
	if err != nil {
		tg.t.Fatalf("reading the target's memory: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tg.t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	tg.t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// traffic is a real producer and consumer group on one subject: every
// acknowledged send must be consumed.
type traffic struct {
	t       *testing.T
	rec     *consumetest.Recorder
	p       *client.Producer
	mu      sync.Mutex
	acked   []string
	subject string
}

// startTraffic subscribes a consumer group first (a new group starts at the
// next message), then opens a producer.
func (tg *target) startTraffic(subject string) *traffic {
	tg.t.Helper()
	rec := consumetest.Start(tg.t, tg.endpoint(), subject, "attack-check")
	time.Sleep(time.Second) // the group's cursor exists before the first send
	p, err := client.NewProducer(context.Background(), tg.endpoint(), client.WithSendTimeout(5*time.Second))
	if err != nil {
		tg.t.Fatalf("producer: %v", err)
	}
	tg.t.Cleanup(func() { _ = p.Close(context.Background()) })
	return &traffic{t: tg.t, rec: rec, p: p, subject: subject}
}

// send sends n messages one at a time and records the acknowledged ones; it
// fails the test if fewer than n are acknowledged within timeout.
func (tr *traffic) send(n int, timeout time.Duration) {
	tr.t.Helper()
	deadline := time.Now().Add(timeout)
	ok := 0
	var lastErr error
	for ok < n && time.Now().Before(deadline) {
		m := tr.p.NewMessage(tr.subject)
		m.SetProperty("attack", "check")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tr.p.Send(ctx, m)
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		tr.mu.Lock()
		tr.acked = append(tr.acked, m.ID())
		tr.mu.Unlock()
		ok++
	}
	if ok < n {
		tr.t.Fatalf("only %d of %d sends acknowledged within %v; last error: %v", ok, n, timeout, lastErr)
	}
}

// allConsumed waits until every acknowledged send has been consumed.
func (tr *traffic) allConsumed(timeout time.Duration) {
	tr.t.Helper()
	tr.mu.Lock()
	ids := append([]string(nil), tr.acked...)
	tr.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		n, some := tr.rec.Missing(ids)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tr.t.Fatalf("%d of %d acknowledged messages not consumed within %v (e.g. %v)", n, len(ids), timeout, some)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// closedWithin reports whether the server closes c (a read returns an error
// or EOF) within d, reading and discarding what it sends.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		return true
	}
}

func dial(t *testing.T, port int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		t.Fatalf("dial 127.0.0.1:%d: %v", port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
