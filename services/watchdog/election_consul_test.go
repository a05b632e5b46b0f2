package watchdog

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	sdktestutil "github.com/hashicorp/consul/sdk/testutil"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
)

// consulSettings elect through the Consul agent at addr with the default
// timings, on a key of the test's own (a killed leader's session holds
// its key for a while in the shared agent).
func consulSettings(t *testing.T, s Settings, addr string) Settings {
	s.ConsulAddress = addr
	s.ConsulKeyPrefix = "qmq-test/" + t.Name() + "/"
	return s
}

// With Consul configured, two watchdogs elect on the Consul lock: the
// leader killed (it neither renews nor releases), the other takes over
// once the leader's check has gone critical and the lock-delay has run
// (4 to 6 s with the defaults), sends what is left, and the two never
// lead at once.
func TestConsulTakeoverAfterLeaderKilled(t *testing.T) {
	agent := consultest.Agent(t)
	took := testTakeover(t, true, agent.HTTPAddr)
	t.Logf("consul election: a killed leader replaced after %v (check TTL %v, lock-delay %v)", took,
		DefaultSettings().ConsulCheckTTL, DefaultSettings().ConsulLockDelay)
}

// A leader stopped cleanly releases the Consul lock: the other leads at
// its next attempt.
func TestConsulTakeoverAfterLeaderStopped(t *testing.T) {
	agent := consultest.Agent(t)
	testTakeover(t, false, agent.HTTPAddr)
}

// The leader's Consul agent stops (a proxy in front of the real agent
// closes, so its connections fail as with a stopped agent): the leader
// steps down before its lock could be taken, /health says why, it sends
// nothing more; the other watchdog, whose agent works, takes over once
// the lock is free and sends the rows written since. Never do both lead.
func TestConsulAgentLostLeaderStepsDown(t *testing.T) {
	agent := consultest.Agent(t)
	e := startEnv(t)
	subject := fmt.Sprintf("wd.consul.lost.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	proxy := startTCPProxy(t, agent.HTTPAddr)
	a := e.start(t, "wd-a", consulSettings(t, e.settings(), proxy.addr()))
	testutil.Eventually(t, 15*time.Second, "wd-a leads", func() bool { return a.Leading() })
	b := e.start(t, "wd-b", consulSettings(t, e.settings(), agent.HTTPAddr))
	lw := watchLeaders(a, b)

	var ids []string
	add := func(n int) {
		for range n {
			id := fmt.Sprintf("261207.9.%d", len(ids))
			ids = append(ids, id)
			db.insert(t, javaContent(id, subject, nil, nil))
		}
	}
	add(10)
	testutil.Eventually(t, 30*time.Second, "wd-a resends the first rows", func() bool { return db.count(t) == 0 && in.get(ids[len(ids)-1]) != nil })
	if b.Leading() || b.logs.Count("resent rows left by applications") != 0 {
		t.Fatal("wd-b leads or resent rows while wd-a holds the lock")
	}

	proxy.stop()
	cut := time.Now()
	testutil.Eventually(t, 10*time.Second, "wd-a steps down", func() bool { return !a.Leading() })
	down := time.Since(cut)
	sentByA := a.logs.Count("resent rows left by applications")
	add(10)
	testutil.Eventually(t, 20*time.Second, "wd-b leads", func() bool { return b.Leading() })
	took := time.Since(cut)
	t.Logf("agent cut at 0: wd-a stepped down at +%v, wd-b led at +%v", down.Round(time.Millisecond), took.Round(time.Millisecond))
	every := DefaultSettings().ConsulCheckTTL / 3
	if limit := 2*every + 500*time.Millisecond; down > limit {
		t.Errorf("wd-a stepped down %v after its agent stopped, want at most %v (one renewal interval short of the check's TTL)", down, limit)
	}
	if a.logs.Count("no longer the leader") == 0 {
		t.Error("wd-a did not log that it stopped leading")
	}

	code, body := a.get(t, "/health")
	var h healthReport
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health %q: %v", body, err)
	}
	t.Logf("wd-a /health (%d): %s", code, strings.TrimSpace(body))
	if code != 503 || h.Status != "degraded" || h.Role != "follower" || !strings.Contains(h.Election, "consul") || !strings.Contains(h.Elector, "consul lock") {
		t.Errorf("wd-a /health = %d %+v; want 503, degraded, follower, an electionError naming consul", code, h)
	}

	testutil.Eventually(t, 30*time.Second, "wd-b resends the rows written after the cut", func() bool {
		for _, id := range ids {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	if got := a.logs.Count("resent rows left by applications"); got != sentByA {
		t.Errorf("wd-a resent rows after it stepped down (%d log lines, %d before)", got, sentByA)
	}
	if n := lw.end(); n != 0 {
		t.Errorf("two watchdogs led at once in %d samples", n)
	}
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
	// The agent back: wd-a follows again, and can leave the agent cleanly
	// at the end of the test (its qmq-watchdog registration).
	proxy.restart()
	testutil.Eventually(t, 10*time.Second, "wd-a's /health ok again, as a follower", func() bool {
		code, h, _ := a.health(t)
		return code == 200 && h.Role == "follower" && h.Leader == "wd-b"
	})
}

// The leader's own Consul agent (a client agent joined to the test's
// server) is stopped cleanly: it leaves the cluster, and Consul ends the
// leader's session at once, not when its TTLs run out. The lock-delay
// still keeps the key from the other watchdog until the leader has
// stopped sending (it stops 1.8 s after its last renewal, the lock-delay
// is 2 s): never do both lead, and the other sends what is left.
func TestConsulLeaderAgentLeaves(t *testing.T) {
	server := consultest.Agent(t)
	own := startClientAgent(t, server.LANAddr)
	e := startEnv(t)
	subject := fmt.Sprintf("wd.consul.leave.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	a := e.start(t, "wd-a", consulSettings(t, e.settings(), own.HTTPAddr))
	testutil.Eventually(t, 15*time.Second, "wd-a leads", func() bool { return a.Leading() })
	b := e.start(t, "wd-b", consulSettings(t, e.settings(), server.HTTPAddr))
	edges := watchEdges(a, b)

	var ids []string
	add := func(n int) {
		for range n {
			id := fmt.Sprintf("261207.10.%d", len(ids))
			ids = append(ids, id)
			db.insert(t, javaContent(id, subject, nil, nil))
		}
	}
	add(10)
	testutil.Eventually(t, 30*time.Second, "wd-a resends the first rows", func() bool { return db.count(t) == 0 && in.get(ids[len(ids)-1]) != nil })

	cut := time.Now()
	if err := own.Stop(); err != nil {
		t.Logf("stopping wd-a's agent: %v", err)
	}
	exited := time.Since(cut) // a clean leave takes seconds; the agent answers until it exits
	testutil.Eventually(t, 20*time.Second, "wd-b leads", func() bool { return b.Leading() })
	add(10)
	testutil.Eventually(t, 30*time.Second, "wd-b resends the rows written after the agent left", func() bool {
		for _, id := range ids {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	aDown, bUp, overlaps := edges.end()
	t.Logf("wd-a's agent told to leave at 0 (exited at +%v): wd-a stopped leading at +%v, wd-b led at +%v",
		exited.Round(time.Millisecond), aDown.Sub(cut).Round(time.Millisecond), bUp.Sub(cut).Round(time.Millisecond))
	if overlaps != 0 || !aDown.Before(bUp) {
		t.Errorf("two watchdogs led at once (%d samples; wd-a down at %v, wd-b up at %v)", overlaps, aDown, bUp)
	}
	testutil.Eventually(t, 10*time.Second, "wd-a's /health says its agent is gone", func() bool {
		_, h, _ := a.health(t)
		return h.Role == "follower" && strings.Contains(h.Election, "connection refused")
	})
	if a.logs.Count("the consul lock was lost (session invalidated)") == 0 {
		t.Error("wd-a did not log that its session ended")
	}
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
}

// startClientAgent runs a Consul client agent joined to the server at
// lanAddr, stopped (leaving the cluster) at the end of the test if not
// before.
func startClientAgent(t *testing.T, lanAddr string) *sdktestutil.TestServer {
	t.Helper()
	var log lockedWriter
	c, err := sdktestutil.NewTestServerConfigT(t, func(c *sdktestutil.TestServerConfig) {
		c.Server, c.Bootstrap = false, false
		c.RetryJoin = []string{lanAddr}
		c.SkipLeaveOnInt = false // stopping it is a clean leave
		c.Connect, c.Peering = nil, nil
		c.LogLevel = "warn"
		c.Stdout, c.Stderr = &log, &log
	})
	if err != nil {
		t.Fatalf("start a consul client agent: %v", err)
	}
	var stopOnce sync.Once
	t.Cleanup(func() { stopOnce.Do(func() { _ = c.Stop() }) })
	cfg := api.DefaultConfig()
	cfg.Address = c.HTTPAddr
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the client agent joins the server", func() bool {
		leader, err := cl.Status().Leader()
		if err != nil || leader == "" {
			return false
		}
		_, _, err = cl.Session().List(nil)
		return err == nil
	})
	if t.Failed() {
		t.Logf("client agent output:\n%s", log.String())
	}
	return c
}

// lockedWriter collects a child's output.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// edgeWatch samples two watchdogs every millisecond: when the first
// stopped leading, when the second started, and how often both led.
type edgeWatch struct {
	stop       chan struct{}
	done       chan struct{}
	aDown, bUp time.Time
	overlaps   int
}

func watchEdges(a, b *watchdog) *edgeWatch {
	w := &edgeWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			la, lb := a.Leading(), b.Leading()
			now := time.Now()
			if !la && w.aDown.IsZero() {
				w.aDown = now
			}
			if lb && w.bUp.IsZero() {
				w.bUp = now
			}
			if la && lb {
				w.overlaps++
			}
		}
	}()
	return w
}

func (w *edgeWatch) end() (aDown, bUp time.Time, overlaps int) {
	close(w.stop)
	<-w.done
	return w.aDown, w.bUp, w.overlaps
}

// tcpProxy forwards TCP connections to target until stop, which closes
// the listener and every connection: to the client the target is gone
// (connections refused). restart listens again on the same address.
// While blackholed, connections stay open but nothing passes either way,
// as with a host that stopped answering.
type tcpProxy struct {
	t         *testing.T
	address   string
	target    string
	blackhole atomic.Bool
	mu        sync.Mutex
	ln        net.Listener
	closed    bool
	conns     []net.Conn
	wg        sync.WaitGroup
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, address: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln, p.closed = ln, false
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				c.Close()
				up.Close()
				return
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.pipe(up, c); up.Close() }()
			go func() { defer p.wg.Done(); p.pipe(c, up); c.Close() }()
		}
	}()
}

func (p *tcpProxy) addr() string { return p.address }

// pipe copies from src to dst, dropping what arrives while blackholed.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// restart listens on the proxy's address again after stop.
func (p *tcpProxy) restart() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.address)
	if err != nil {
		p.t.Fatalf("proxy: listen on %s again: %v", p.address, err)
	}
	p.serve(ln)
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
