package framework

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/services/broker"
)

// Broker is one broker of the cluster. Its ports and store are fixed when
// it is created, so Stop and Start (Restart) bring back the same broker
// with the same data at the same addresses, as a restarted process would.
type Broker struct {
	c        *Cluster
	group    string
	hostname string // the metaserver's key for it, with the serve port
	settings broker.Settings
	logs     *testlog.Buffer
	log      hclog.Logger

	mu     sync.Mutex
	srv    *broker.Server
	cancel context.CancelFunc // nil while stopped
	done   chan error         // Run's result
	runs   int
}

// newBroker picks the broker's ports, builds its settings and registers it
// with the metaserver in role, before it ever starts: a slave must find its
// master's sync port in the broker table, and the metaserver refuses a
// broker it does not know.
func (c *Cluster) newBroker(group string, role int) *Broker {
	c.t.Helper()
	host := fmt.Sprintf("framework-%s-a", group) // the first master; the slave is -b
	if role == RoleSlave {
		host = fmt.Sprintf("framework-%s-b", group)
	}
	ports := testutil.FreePorts(c.t, 3)
	s := broker.DefaultSettings()
	s.MetaEndpoint = c.meta.Endpoint()
	s.Port, s.SyncPort, s.HTTPPort = ports[0], ports[1], ports[2]
	s.BindHost, s.AdvertiseIP = "127.0.0.1", "127.0.0.1"
	s.MetaRetry = 100 * time.Millisecond
	s.HeartbeatInterval = 200 * time.Millisecond
	s.RetryDelay = 0
	s.Store.Root = filepath.Join(c.t.TempDir(), "store")
	s.Store.FlushInterval = 10 * time.Millisecond
	// qmq dev's segment sizes: 1 GiB message segments are pointless for a test.
	s.Store.MessageSegmentSize, s.Store.ActionSegmentSize, s.Store.ConsumerLogSegmentUnit = 64<<20, 16<<20, 100_000
	if c.opts.Configure != nil {
		c.opts.Configure(group, role, &s)
	}
	b := &Broker{c: c, group: group, hostname: host, settings: s, logs: &testlog.Buffer{}}
	b.log = c.logger("broker."+host, b.logs)
	ctx, cancel := c.ctx()
	defer cancel()
	if _, _, err := c.admin.AddBroker(ctx, admin.BrokerSpec{Group: group, Role: admin.Role(role), Hostname: host, IP: "127.0.0.1",
		ServePort: s.Port, SyncPort: s.SyncPort}); err != nil {
		c.t.Fatalf("framework: register %s: %v", host, err)
	}
	c.t.Cleanup(func() { // after the Stop below: the log is complete
		if c.t.Failed() {
			c.t.Logf("---- broker %s (group %s) log ----\n%s", host, group, tail(b.logs.String()))
		}
	})
	c.t.Cleanup(b.Stop)
	return b
}

// String names the broker in messages: its hostname and serve port.
func (b *Broker) String() string { return fmt.Sprintf("%s:%d", b.hostname, b.settings.Port) }

// Hostname is the hostname the broker is registered under.
func (b *Broker) Hostname() string { return b.hostname }

// Addr is the broker's client address, 127.0.0.1:<broker.port>.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.settings.Port)) }

// Settings are the settings the broker runs with.
func (b *Broker) Settings() broker.Settings { return b.settings }

// Server is the running broker, or the last one after Stop (nil before the
// first Start).
func (b *Broker) Server() *broker.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv
}

// Running reports whether the broker is started and not stopped.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cancel != nil
}

// Logs is everything the broker logged, over all its runs.
func (b *Broker) Logs() string { return b.logs.String() }

// Start builds and runs the broker. It does not wait for it to come online
// (a master) or to follow its master (a slave): see Cluster.WaitOnline and
// Group.WaitSlaveCaughtUp.
func (b *Broker) Start() {
	t := b.c.t
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		t.Fatalf("framework: broker %s started twice", b)
	}
	b.runs++
	fmt.Fprintf(b.logs, "==== start %d ====\n", b.runs)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := broker.New(ctx, b.settings, broker.Options{Logger: b.log, Hostname: b.hostname})
	if err != nil {
		cancel()
		t.Fatalf("framework: start broker %s: %v", b, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.srv, b.cancel, b.done = srv, cancel, done
}

// Stop shuts the broker down the way SIGTERM does (OFFLINE to the
// metaserver, then close) and waits for it. Stopping a stopped broker does
// nothing.
func (b *Broker) Stop() {
	t := b.c.t
	t.Helper()
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.cancel, b.done = nil, nil
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("framework: broker %s: Run: %v", b, err)
		}
	case <-time.After(b.c.opts.WaitTimeout):
		t.Errorf("framework: broker %s did not stop within %v", b, b.c.opts.WaitTimeout)
	}
}

// Restart is Stop then Start: same ports, same store.
func (b *Broker) Restart() {
	b.c.t.Helper()
	b.Stop()
	b.Start()
}

// WaitLog waits until the broker has logged a line containing substr.
func (b *Broker) WaitLog(substr string) {
	b.c.t.Helper()
	testutil.Eventually(b.c.t, b.c.opts.WaitTimeout, fmt.Sprintf("broker %s to log %q", b, substr), func() bool {
		return strings.Contains(b.logs.String(), substr)
	})
}
