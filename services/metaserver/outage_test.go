package metaserver

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// dbProxy sits between the metaserver and MariaDB so a test can take the
// database away (every connection dropped, new ones refused) and bring it back,
// without stopping the machine's shared MariaDB.
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *dbProxy) addr() string { return p.ln.Addr().String() }

func (p *dbProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// setDown drops every connection and refuses new ones (true), or lets them through again (false).
func (p *dbProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// TestDatabaseOutageKeepsExistingRoutes checks QMQ's promise: a MySQL outage
// only affects new subjects (and new consumers' bookkeeping); existing routes
// are served, live groups are not timed out, and everything resumes after.
func TestDatabaseOutageKeepsExistingRoutes(t *testing.T) {
	db, addr := newMySQLDatabase(t)
	proxy := startDBProxy(t, addr)
	h := startServer(t, func(s *Settings, d *Dynamic) {
		useMySQL(proxy.addr(), db)(s, d)
		d.HeartbeatTimeout = 2 * time.Second
	})
	c := h.metaClient()
	online(t, c, "g1", "10.0.0.1:20881", 0)
	online(t, c, "g2", "10.0.0.2:20881", 0)
	before := names(register(t, c, "existing", protocol.ClientTypeProducer, "", "p1"))
	if len(before) != 2 {
		t.Fatalf("route before outage: %v", before)
	}

	proxy.setDown(true)
	testutil.Eventually(t, 10*time.Second, "/health to report the database down", func() bool {
		_, body := h.get("/health")
		return strings.Contains(body, `"status":"degraded"`)
	})
	stopBeats := make(chan struct{})
	beatsDone := make(chan struct{})
	go func() { // brokers keep heartbeating through the outage
		defer close(beatsDone)
		for {
			select {
			case <-stopBeats:
				return
			case <-time.After(300 * time.Millisecond):
				for g, a := range map[string]string{"g1": "10.0.0.1:20881", "g2": "10.0.0.2:20881"} {
					_ = c.RegisterBroker(context.Background(), protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestHeartbeat, GroupName: g, BrokerAddress: a, Role: 0, State: 1})
				}
			}
		}
	}()
	time.Sleep(3 * time.Second) // longer than heartbeat.timeout.ms
	for _, typ := range []int32{protocol.ClientTypeProducer, protocol.ClientTypeConsumer} {
		got := names(register(t, c, "existing", typ, "cg", "new-client"))
		if strings.Join(got, ",") != strings.Join(before, ",") {
			t.Fatalf("existing route during outage (client type %d): %v, want %v", typ, got, before)
		}
	}
	_, err := c.RegisterClient(context.Background(), protocol.ClientRegisterRequest{Subject: "brand.new", ClientTypeCode: protocol.ClientTypeProducer, ClientID: "p2", RequestType: protocol.ClientRequestOnline})
	if err == nil || !strings.Contains(err.Error(), "the database is needed for new subjects") {
		t.Fatalf("new subject during outage: %v", err)
	}
	if out := h.mustTool("ListBrokerGroups"); !strings.Contains(out, `"brokerState":"RW"`) || strings.Contains(out, "NRW") {
		t.Fatalf("groups during outage: %s", out)
	}

	proxy.setDown(false)
	testutil.Eventually(t, 10*time.Second, "/health to recover", func() bool {
		_, body := h.get("/health")
		return strings.Contains(body, `"status":"ok"`)
	})
	if got := register(t, c, "brand.new", protocol.ClientTypeProducer, "", "p2"); len(got.Groups) != 2 {
		t.Fatalf("new subject after outage: %v", names(got))
	}
	close(stopBeats)
	<-beatsDone
}
