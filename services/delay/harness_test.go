package delay

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
	"github.com/qmq-go/qmq/storage/vfs"
)

// The test cluster: a real metaserver (metatest), one real-time broker
// master and a delay server, all in-process on free loopback ports.

const (
	brokerHost = "delay-test-broker"
	delayHost  = "delay-test-delay"
	delayGroup = "delay1"
)

func startMeta(t *testing.T) *metatest.Server {
	t.Helper()
	return metatest.Start(t, testlog.Logger(t, "meta", hclog.Warn))
}

// brokerHarness is a real-time broker master of group rt1; restart keeps
// its store and port.
type brokerHarness struct {
	t      *testing.T
	meta   *metatest.Server
	root   string
	port   int
	srv    *broker.Server
	cancel context.CancelFunc
	done   chan error
	change func(*broker.Settings) // test-specific changes, may be nil
}

// startBroker runs a real-time broker master of group rt1 until the test ends.
func startBroker(t *testing.T, m *metatest.Server, change ...func(*broker.Settings)) *brokerHarness {
	t.Helper()
	b := &brokerHarness{t: t, meta: m, root: filepath.Join(t.TempDir(), "broker")}
	if len(change) > 0 {
		b.change = change[0]
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *brokerHarness) start() {
	b.t.Helper()
	s := broker.DefaultSettings()
	s.MetaEndpoint = b.meta.Endpoint()
	s.Port, s.SyncPort, s.HTTPPort = b.port, 0, -1
	s.MetaRetry, s.HeartbeatInterval = 100*time.Millisecond, 200*time.Millisecond
	s.Store.Root = b.root
	// Small segments: the defaults preallocate a GiB (as qmq dev does).
	s.Store.MessageSegmentSize, s.Store.ActionSegmentSize, s.Store.ConsumerLogSegmentUnit = 64<<20, 16<<20, 100_000
	if b.change != nil {
		b.change(&s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := broker.New(ctx, s, broker.Options{Logger: testlog.Logger(b.t, "broker", hclog.Warn), Hostname: brokerHost})
	if err != nil {
		cancel()
		b.t.Fatalf("start broker: %v", err)
	}
	if b.port == 0 {
		b.port = srv.Port()
		b.meta.AddBroker("rt1", int(protocol.RoleMaster), brokerHost, b.port)
	}
	b.srv, b.cancel, b.done = srv, cancel, make(chan error, 1)
	go func() { b.done <- srv.Run(ctx) }()
	testutil.Eventually(b.t, 10*time.Second, "the broker to go online", srv.Online)
}

func (b *brokerHarness) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	if err := <-b.done; err != nil {
		b.t.Errorf("broker: %v", err)
	}
	b.cancel = nil
}

// delayHarness runs the delay server; restart keeps store.root and port.
type delayHarness struct {
	t        *testing.T
	meta     *metatest.Server
	root     string
	port     int
	settings func(*Settings) // test-specific changes, may be nil
	srv      *Server
	cancel   context.CancelFunc
	done     chan error
	logs     *testlog.Buffer // every run's log, also written to the test's
	fs       vfs.FS          // the store's file system (nil: the OS's)
	hostname string          // "": delayHost
}

func testSettings(m *metatest.Server, root string) Settings {
	s := DefaultSettings()
	s.MetaEndpoint = m.Endpoint()
	// Free ports: a fixed sync.port (QMQ's 20802) would collide with any
	// other delay server on the machine, tests of other packages included.
	s.Port, s.SyncPort, s.HTTPPort = 0, 0, 0
	s.MetaRetry, s.HeartbeatInterval = 100*time.Millisecond, 200*time.Millisecond
	s.Dispatch.RetryMin, s.Dispatch.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	s.Store.Root = root
	s.Store.MessageSegmentSize = 16 << 20
	return s
}

// startDelay registers the delay server as DELAY_MASTER of delay1 (role 5)
// on its first start and runs it until stop or the test's end.
func startDelay(t *testing.T, m *metatest.Server, change func(*Settings)) *delayHarness {
	t.Helper()
	return startDelayOn(t, m, nil, change)
}

// startDelayOn is startDelay with the store on fs.
func startDelayOn(t *testing.T, m *metatest.Server, fs vfs.FS, change func(*Settings)) *delayHarness {
	t.Helper()
	h := &delayHarness{t: t, meta: m, root: filepath.Join(t.TempDir(), "delay"), settings: change, fs: fs}
	h.start(int(protocol.RoleDelayMaster))
	t.Cleanup(h.stop)
	return h
}

// start runs the server; on the first start it registers it with role
// (none when role < 0).
func (h *delayHarness) start(role int) {
	h.t.Helper()
	s := testSettings(h.meta, h.root)
	s.Port = h.port
	if h.settings != nil {
		h.settings(&s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if h.logs == nil {
		h.logs = &testlog.Buffer{}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "delay", Level: hclog.Info, Output: io.MultiWriter(testlog.Writer(h.t), h.logs)})
	host := h.hostname
	if host == "" {
		host = delayHost
	}
	srv, err := New(ctx, s, Options{Logger: log, Hostname: host, FS: h.fs})
	if err != nil {
		cancel()
		h.t.Fatalf("start delay server: %v", err)
	}
	if h.port == 0 {
		h.port = srv.Port()
		if role >= 0 {
			h.meta.AddBroker(delayGroup, role, delayHost, h.port)
		}
	}
	h.srv, h.cancel, h.done = srv, cancel, make(chan error, 1)
	go func() { h.done <- srv.Run(ctx) }()
}

func (h *delayHarness) waitOnline() {
	h.t.Helper()
	testutil.Eventually(h.t, 10*time.Second, "the delay server to go online", h.srv.Online)
}

// stop stops the server and returns Run's error (nil when stopped already).
func (h *delayHarness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("delay server: %v", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Errorf("delay server did not stop within 15 s")
	}
	h.cancel = nil
}

func (h *delayHarness) restart() {
	h.t.Helper()
	h.stop()
	h.start(int(protocol.RoleDelayMaster))
}
