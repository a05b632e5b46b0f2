package broker

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// counter reads a counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Counter.GetValue()
}

// sendOne sends one message without registering its subject and returns
// its failure, if any.
func sendOne(c *conn, subject, id string) *protocol.SendResult {
	c.t.Helper()
	raw := c.raw
	c.raw = true
	defer func() { c.raw = raw }()
	rs := c.send(msg(subject, id))
	if len(rs) == 0 {
		return nil
	}
	return &rs[0]
}

func wantRefused(t *testing.T, r *protocol.SendResult, subject string, remark ...string) {
	t.Helper()
	if r == nil {
		t.Fatalf("message for %q accepted, want SUBJECT_NOT_ASSIGNED", subject)
	}
	if r.Code != protocol.SendSubjectNotAssigned {
		t.Fatalf("message for %q: code %s (%s), want SUBJECT_NOT_ASSIGNED", subject, protocol.SendCodeName(r.Code), r.Remark)
	}
	for _, s := range remark {
		if !strings.Contains(r.Remark, s) {
			t.Fatalf("refusal of %q does not say %q: %s", subject, s, r.Remark)
		}
	}
}

func wantAccepted(t *testing.T, r *protocol.SendResult, subject string) {
	t.Helper()
	if r != nil {
		t.Fatalf("message for %q refused: %s: %s", subject, protocol.SendCodeName(r.Code), r.Remark)
	}
}

// The producer flow is CLIENT_REGISTER (which creates the route), then
// SEND_MESSAGE: a route created a moment before the send is accepted, an
// unregistered subject (and its retry subjects) is refused with an
// explanation, and a flood of sends to it asks the metaserver about once
// per negative TTL.
func TestSendChecksSubjectRoute(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m, true, "subject.route.negative.ttl.ms=300")
	c := b.dial()

	wantRefused(t, sendOne(c, "unrouted", "u1"), "unrouted", `subject "unrouted" is not assigned to any broker group`, "CLIENT_REGISTER")
	wantRefused(t, sendOne(c, "%RETRY%unrouted%g", "u2"), "%RETRY%unrouted%g", `"unrouted"`)
	before := counter(t, b.srv.inst().m.routeQueries)
	for i := 0; i < 50; i++ {
		wantRefused(t, sendOne(c, "unrouted", "flood"), "unrouted")
	}
	if n := counter(t, b.srv.inst().m.routeQueries) - before; n > 2 {
		t.Fatalf("50 sends to an unrouted subject asked the metaserver %v times; the refusal should be cached", n)
	}

	// Registered a moment ago: accepted at once (a miss asks the metaserver).
	if groups, err := m.register("fresh"); err != nil || len(groups) != 1 || groups[0] != "g1" {
		t.Fatalf("register fresh: %v %v", groups, err)
	}
	wantAccepted(t, sendOne(c, "fresh", "f1"), "fresh")
	wantAccepted(t, sendOne(c, "%RETRY%fresh%g", "f2"), "%RETRY%fresh%g")
	wantAccepted(t, sendOne(c, "%DEAD_RETRY%fresh%g", "f3"), "%DEAD_RETRY%fresh%g")

	// Refused, then registered: accepted once the refusal has expired.
	wantRefused(t, sendOne(c, "late", "l1"), "late")
	if _, err := m.register("late"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	wantAccepted(t, sendOne(c, "late", "l2"), "late")

	// A batch mixing routed and unrouted subjects: only the unrouted fail.
	c.raw = true
	rs := c.send(msg("fresh", "ok1"), msg("nowhere", "bad1"), msg("late", "ok2"))
	if len(rs) != 1 || rs[0].MessageID != "bad1" || rs[0].Code != protocol.SendSubjectNotAssigned {
		t.Fatalf("mixed batch failures %+v, want only bad1 refused", rs)
	}
	if got := b.srv.inst().store.MaxSequence("fresh"); got < 0 {
		testutil.Eventually(t, 5*time.Second, "fresh stored", func() bool { return b.srv.inst().store.MaxSequence("fresh") == 1 })
	}
}

// A subject routed to other groups only is refused with its route; adding
// this group to the route lets it in, and removing it is noticed by the
// periodic refresh.
func TestSendRefusesSubjectRoutedElsewhere(t *testing.T) {
	m := startMeta(t)
	b1 := startBroker(t, m, true, "subject.route.refresh.ms=200", "subject.route.negative.ttl.ms=100")
	b2 := startBrokerAs(t, m, "g2", "broker-test-host-2", true)
	testutil.Eventually(t, 10*time.Second, "g2 online", b2.srv.Online)

	groups, err := m.register("moving")
	if err != nil || len(groups) != 2 {
		t.Fatalf("register moving: %v %v; want both groups (min.group.num=2)", groups, err)
	}
	c1, c2 := b1.dial(), b2.dial()
	wantAccepted(t, sendOne(c1, "moving", "m1"), "moving")
	wantAccepted(t, sendOne(c2, "moving", "m2"), "moving")

	// g1 leaves the route: the refresh notices, then b1 refuses.
	if err := m.admin().RemoveSubjectBrokerGroup(context.Background(), "moving", "g1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "b1 refusing moving", func() bool {
		return sendOne(c1, "moving", "m3") != nil
	})
	wantRefused(t, sendOne(c1, "moving", "m4"), "moving", "not assigned to broker group g1", "its route is g2", "AddSubjectBrokerGroup")
	wantAccepted(t, sendOne(c2, "moving", "m5"), "moving")

	// g1 joins again: accepted once the refusal expires.
	if _, err := m.admin().AddSubjectBrokerGroup(context.Background(), "moving", "g1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "b1 accepting moving again", func() bool {
		return sendOne(c1, "moving", "m6") == nil
	})
}

// tcpProxy forwards connections to target until it is cut; then it closes
// them all and refuses new ones (a metaserver outage).
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// A metaserver outage must not stop produce: subjects the broker cannot
// check are accepted, with one warning, and checks resume when it is back.
func TestSendFailsOpenWhenMetaserverIsDown(t *testing.T) {
	m := startMeta(t)
	p := startProxy(t, m.TCP())
	b := startBroker(t, m, true, "meta.server.endpoint="+p.addr(), "subject.route.negative.ttl.ms=0")
	c := b.dial()
	wantRefused(t, sendOne(c, "before", "b1"), "before")

	p.cut(true)
	start := time.Now()
	for i := 0; i < 5; i++ {
		subject := "unchecked-" + string(rune('a'+i))
		wantAccepted(t, sendOne(c, subject, "x"), subject)
		time.Sleep(150 * time.Millisecond) // longer than meta.retry.interval.ms: each send may ask again
	}
	wantAccepted(t, sendOne(c, "before", "b2"), "before")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("sends during the outage took %v", d)
	}
	if n := strings.Count(b.logs.String(), "cannot check subjects against their routes"); n != 1 {
		t.Fatalf("%d route-check warnings during the outage, want exactly 1:\n%s", n, b.logs.String())
	}

	p.cut(false)
	testutil.Eventually(t, 10*time.Second, "checks working again", func() bool {
		r := sendOne(c, "still-unrouted", "y")
		return r != nil && r.Code == protocol.SendSubjectNotAssigned
	})
	if !strings.Contains(b.logs.String(), "subject route checks work again") {
		t.Fatal("no log line saying route checks work again")
	}
}

func TestRealSubject(t *testing.T) {
	for in, want := range map[string]string{
		"order": "order", "%RETRY%order%g": "order", "%DEAD_RETRY%order%g": "order",
		"%RETRY%%DEAD_RETRY%order%g%reader": "order", "%RETRY%order": "order",
	} {
		if got := protocol.RealSubject(in); got != want {
			t.Errorf("protocol.RealSubject(%q) = %q, want %q", in, got, want)
		}
	}
}
