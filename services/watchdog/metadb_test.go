package watchdog

import (
	"database/sql"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/schema"
)

// mysqlMeta creates a metaserver database on MariaDB (schema/init.sql)
// and returns its JDBC URL as datasource.properties would hold it.
func mysqlMeta(t *testing.T) (jdbcURL, addr, name string) {
	t.Helper()
	name, dsn := testmysql.Database(t, "qmqwdmeta_")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MultiStatements = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := db.Exec(schema.MySQL); err != nil {
		t.Fatalf("apply schema/init.sql: %v", err)
	}
	return "jdbc:mysql://" + cfg.Addr + "/" + name, cfg.Addr, name
}

// proxy forwards TCP connections to target until cut, which closes every
// connection and refuses new ones (a metaserver database gone for one
// watchdog only).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
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

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// The election on a MySQL metaserver database (jdbc.url): one of two
// watchdogs leads; when the leader loses its database (its renewals fail),
// it stops leading before its lease ends and the other takes over after
// it, never both at once; /health of the cut-off one says degraded.
func TestElectionOnMySQLLeaderLosesDatabase(t *testing.T) {
	jdbcURL, addr, name := mysqlMeta(t)
	px := startProxy(t, addr)
	e := &env{} // no broker: nothing to resend here, only the election
	base := DefaultSettings()
	base.AppCode, base.MetaEndpoint = "qmq-watchdog-test", "127.0.0.1:1"
	base.HTTPPort, base.BindHost = 0, "127.0.0.1"
	base.JDBCUser = "root"
	base.ElectInterval, base.Lease = 100*time.Millisecond, 600*time.Millisecond
	viaProxy := base
	viaProxy.JDBCURL = "jdbc:mysql://" + px.ln.Addr().String() + "/" + name
	direct := base
	direct.JDBCURL = jdbcURL

	a := e.start(t, "wd-a", viaProxy)
	testutil.Eventually(t, 10*time.Second, "wd-a leads", a.Leading)
	b := e.start(t, "wd-b", direct)
	lw := watchLeaders(a, b)
	time.Sleep(time.Second)
	if b.Leading() {
		t.Fatal("wd-b took the lead from a live leader")
	}
	px.cut()
	cut := time.Now()
	testutil.Eventually(t, 10*time.Second, "wd-b leads", b.Leading)
	took := time.Since(cut)
	t.Logf("wd-b leads %v after wd-a lost the database", took)
	if took < base.Lease-base.ElectInterval {
		t.Errorf("wd-b took over after %v, before wd-a's lease (%v) could have expired", took, base.Lease)
	}
	if a.Leading() {
		t.Error("wd-a still leads without its database")
	}
	code, body := a.get(t, "/health")
	if code != 503 || !strings.Contains(body, `"status":"degraded"`) {
		t.Errorf("/health of the cut-off watchdog: %d %s", code, body)
	}
	if n := lw.end(); n != 0 {
		t.Errorf("two watchdogs led at once in %d samples", n)
	}
	if a.logs.Count("no longer the leader") != 1 {
		t.Errorf("wd-a did not log that it stopped leading:\n%s", a.logs)
	}
}
