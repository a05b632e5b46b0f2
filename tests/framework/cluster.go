package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// Roles passed to ClusterOptions.Configure: the codes AddBroker registers.
const (
	RoleMaster = int(admin.RoleMaster)
	RoleSlave  = int(admin.RoleSlave)
)

// ClusterOptions describe the cluster StartCluster builds.
type ClusterOptions struct {
	// Groups is the number of broker groups, named g1, g2, …; 0 means 1.
	// The metaserver spreads a subject over min.group.num=2 groups when
	// there are two.
	Groups int
	// Slaves gives each group a slave besides its master.
	Slaves bool
	// Configure, if set, adjusts each broker's settings before it is built
	// (role is RoleMaster or RoleSlave). The ports, store.root and
	// meta.server.endpoint the framework chose are already set; keep them.
	Configure func(group string, role int, s *broker.Settings)
	// Verbose streams every log into the test's output as it is written;
	// otherwise logs are shown only when the test fails.
	Verbose bool
	// WaitTimeout bounds each wait (online, caught up, stop); 0 means 30 s,
	// enough for a busy machine under the race detector.
	WaitTimeout time.Duration
}

// Cluster is a running metaserver and its broker groups. It belongs to the
// test that started it and stops with it.
type Cluster struct {
	t       testing.TB
	opts    ClusterOptions
	meta    *metatest.Server
	metaLog *testlog.Buffer
	admin   *admin.Client
	http    *http.Client // reads the brokers' /health
	groups  []*Group
}

// StartCluster starts a metaserver, registers every broker with it
// (AddBroker, fixed ports), starts the masters and then the slaves, and
// returns once every master is online and every slave has caught up. All
// of it stops when t ends.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Groups <= 0 {
		opts.Groups = 1
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 30 * time.Second
	}
	c := &Cluster{t: t, opts: opts, metaLog: &testlog.Buffer{}, http: &http.Client{Timeout: 5 * time.Second}}
	c.meta = metatest.Start(t, c.logger("meta", c.metaLog))
	c.admin = admin.New(c.meta.HTTP(), metatest.Token)
	t.Cleanup(func() { // runs after every broker's stop (cleanups run last-in first-out)
		if t.Failed() {
			t.Logf("---- metaserver log ----\n%s", tail(c.metaLog.String()))
		}
	})
	for i := 1; i <= opts.Groups; i++ {
		g := &Group{c: c, Name: fmt.Sprintf("g%d", i)}
		g.Master = c.newBroker(g.Name, RoleMaster)
		if opts.Slaves {
			g.Slave = c.newBroker(g.Name, RoleSlave)
		}
		c.groups = append(c.groups, g)
	}
	for _, g := range c.groups {
		g.Master.Start()
	}
	for _, g := range c.groups {
		if g.Slave != nil {
			g.Slave.Start()
		}
	}
	c.WaitOnline()
	c.WaitSlaveCaughtUp()
	return c
}

// logger is an hclog logger into buf, and into the test's log when Verbose.
func (c *Cluster) logger(name string, buf *testlog.Buffer) hclog.Logger {
	var out io.Writer = buf
	if c.opts.Verbose {
		out = io.MultiWriter(buf, testlog.Writer(c.t))
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: out, Level: hclog.Info})
}

// Meta is the metaserver.
func (c *Cluster) Meta() *metatest.Server { return c.meta }

// Endpoint is the meta.server.endpoint clients are given.
func (c *Cluster) Endpoint() string { return c.meta.Endpoint() }

// Admin is a management client of the metaserver, with its token.
func (c *Cluster) Admin() *admin.Client { return c.admin }

// Groups are the broker groups, in order g1, g2, ….
func (c *Cluster) Groups() []*Group { return c.groups }

// Group is the group named name; the test fails if there is none.
func (c *Cluster) Group(name string) *Group {
	c.t.Helper()
	for _, g := range c.groups {
		if g.Name == name {
			return g
		}
	}
	c.t.Fatalf("framework: no broker group %q (the cluster has g1 to g%d)", name, len(c.groups))
	return nil
}

// WaitOnline waits until every group's running master is online: it
// registered ONLINE with the metaserver and takes clients.
func (c *Cluster) WaitOnline() {
	c.t.Helper()
	for _, g := range c.groups {
		g.WaitOnline()
	}
}

// WaitSlaveCaughtUp waits until, in every group whose master and slave are
// running, the slave follows the master with nothing left to copy.
func (c *Cluster) WaitSlaveCaughtUp() {
	c.t.Helper()
	for _, g := range c.groups {
		if g.Slave != nil && g.Slave.Running() && g.Master.Running() {
			g.WaitSlaveCaughtUp()
		}
	}
}

// ctx is a context for one management call.
func (c *Cluster) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.opts.WaitTimeout)
}
