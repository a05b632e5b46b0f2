package broker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
	"github.com/qmq-go/qmq/storage/vfs"
)

// metaHarness is an in-process metaserver on free ports (see metatest).
type metaHarness struct {
	*metatest.Server
	t      *testing.T
	mu     sync.Mutex
	routed map[string]bool // subjects registered by register
}

func startMeta(t *testing.T) *metaHarness {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Name: "meta", Output: testlog.Writer(t), Level: hclog.Warn})
	return &metaHarness{Server: metatest.Start(t, log), t: t, routed: map[string]bool{}}
}

// register does what a producer does before sending: CLIENT_REGISTER, which
// creates the subject's route. It returns the route's groups, or the
// metaserver's refusal.
func (m *metaHarness) register(subject string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mc, err := meta.Dial(ctx, m.TCP())
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	resp, err := mc.RegisterClient(ctx, protocol.ClientRegisterRequest{Subject: subject, ClientTypeCode: protocol.ClientTypeProducer,
		AppCode: "broker-test", ClientID: "broker-test-producer", RequestType: protocol.ClientRequestOnline})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, g := range resp.Groups {
		names = append(names, g.Name)
	}
	return names, nil
}

// registerOnce registers the real subjects of msgs that were not registered
// yet. Failures (an illegal subject, no live group) are left to the send.
func (m *metaHarness) registerOnce(msgs []protocol.Message) {
	for _, msg := range msgs {
		subject := protocol.RealSubject(msg.Subject)
		m.mu.Lock()
		done := m.routed[subject]
		m.mu.Unlock()
		if done {
			continue
		}
		if _, err := m.register(subject); err != nil {
			m.t.Logf("CLIENT_REGISTER %q: %v", subject, err)
			continue
		}
		m.mu.Lock()
		m.routed[subject] = true
		m.mu.Unlock()
	}
}

// harnessKeys are the keys of an in-process test broker: free ports, a
// fast heartbeat and retry, the metaserver m.
func harnessKeys(m *metaHarness) string {
	return "meta.server.endpoint=" + m.endpoint() + "\nbroker.port=0\nsync.port=0\nbroker.http.port=0\nmeta.retry.interval.ms=100\nbroker.heartbeat.interval.ms=200\nmessage.retry.delay.seconds=0\n"
}

func noEnv(string) (string, bool) { return "", false }

func (m *metaHarness) endpoint() string { return m.Endpoint() }

// admin is a management client of the test metaserver, with its token.
func (m *metaHarness) admin() *admin.Client { return admin.New(m.HTTP(), metatest.Token) }

func (m *metaHarness) addBroker(group, hostname string, port int) {
	m.AddBroker(group, 0, hostname, port)
}

// brokerHarness is one broker run; restart keeps store.root and port.
type brokerHarness struct {
	t        *testing.T
	meta     *metaHarness
	dir      string // an empty directory: the harness writes no broker.properties
	base     string // the harness's keys, one key=value per line, under sets
	root     string // store.root
	hostname string
	group    string // registered with AddBroker; default g1
	sets     []string
	srv      *Server
	cancel   context.CancelFunc
	done     chan error
	logs     *testlog.Buffer
	port     int
	fs       vfs.FS // the store's file system (nil: the OS's)
}

const testHost = "broker-test-host"

// startBroker registers testHost with the metaserver (unless register is
// false) and runs a broker until the test ends.
func startBroker(t *testing.T, m *metaHarness, register bool, sets ...string) *brokerHarness {
	t.Helper()
	return startBrokerAs(t, m, "g1", testHost, register, sets...)
}

// startBrokerAs is startBroker for another group and hostname.
func startBrokerAs(t *testing.T, m *metaHarness, group, hostname string, register bool, sets ...string) *brokerHarness {
	t.Helper()
	dir := t.TempDir()
	b := &brokerHarness{t: t, meta: m, dir: dir, base: harnessKeys(m), root: filepath.Join(dir, "store"), hostname: hostname, group: group, sets: sets}
	b.start(register, true)
	t.Cleanup(b.stop)
	return b
}

func (b *brokerHarness) start(register, waitOnline bool) {
	b.t.Helper()
	sets := append(strings.Fields(b.base), "store.root="+b.root, "flush.interval.ms=10")
	sets = append(sets, b.sets...)
	if b.port != 0 {
		sets = append(sets, "broker.port="+strconv.Itoa(b.port))
	}
	o, err := conf.ParseSet(sets)
	if err != nil {
		b.t.Fatal(err)
	}
	// The keys go through the loader, as an operator's would, but as
	// overrides: nothing is written, the directory stays empty.
	settings, _, err := LoadSettings(b.dir, conf.Lookup{Overrides: o, Env: noEnv})
	if err != nil {
		b.t.Fatalf("broker settings: %v", err)
	}
	b.logs = &testlog.Buffer{}
	log := hclog.New(&hclog.LoggerOptions{Name: "broker", Output: io.MultiWriter(b.logs, testlog.Writer(b.t)), Level: hclog.Info})
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, settings, Options{Logger: log, Hostname: b.hostname, FS: b.fs})
	if err != nil {
		cancel()
		b.t.Fatalf("start broker: %v", err)
	}
	if register && b.port == 0 {
		group := b.group
		if group == "" {
			group = "g1"
		}
		b.meta.addBroker(group, b.hostname, srv.Port())
	}
	b.port = srv.Port()
	b.srv, b.cancel, b.done = srv, cancel, make(chan error, 1)
	go func() { b.done <- srv.Run(ctx) }()
	if waitOnline {
		testutil.Eventually(b.t, 10*time.Second, "broker online", srv.Online)
	}
}

func (b *brokerHarness) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Errorf("broker Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		b.t.Errorf("broker did not stop within 15s")
	}
}

func (b *brokerHarness) restart() {
	b.t.Helper()
	b.stop()
	b.start(false, true)
}

// conn is a raw protocol client of the broker. Its send registers subjects
// with the metaserver first, as producers do, unless raw is set.
type conn struct {
	t    *testing.T
	c    *remoting.Client
	meta *metaHarness
	raw  bool
}

func (b *brokerHarness) dial() *conn {
	b.t.Helper()
	c, err := remoting.Dial(context.Background(), net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), 0)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { c.Close() })
	return &conn{t: b.t, c: c, meta: b.meta}
}

func (c *conn) call(code int16, body []byte) protocol.Frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := c.c.Call(ctx, code, body)
	if err != nil {
		c.t.Fatalf("%s: %v", protocol.CodeName(code, false), err)
	}
	return f
}

// send sends one batch and returns the failures.
func (c *conn) send(msgs ...protocol.Message) []protocol.SendResult {
	c.t.Helper()
	if !c.raw && c.meta != nil {
		c.meta.registerOnce(msgs)
	}
	var body []byte
	for i := range msgs {
		var err error
		if body, err = protocol.AppendMessage(body, &msgs[i]); err != nil {
			c.t.Fatal(err)
		}
	}
	f := c.call(protocol.CodeSendMessage, body)
	if f.Header.Code != protocol.CodeSuccess {
		c.t.Fatalf("SEND_MESSAGE: status %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
	rs, err := protocol.DecodeSendResults(f.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return rs
}

func (c *conn) mustSend(msgs ...protocol.Message) {
	c.t.Helper()
	if rs := c.send(msgs...); len(rs) > 0 {
		c.t.Fatalf("send failures: %+v", rs)
	}
}

func msg(subject, id string, tags ...string) protocol.Message {
	return protocol.Message{CreateTime: time.Now().UnixMilli(), ExpireOrScheduleTime: time.Now().Add(time.Hour).UnixMilli(),
		Subject: subject, MessageID: id, Tags: tags, Attrs: []protocol.Attr{{Key: "body", Value: "hello " + id}}}
}

// pull sends a PULL_MESSAGE and decodes the answer (nil on NO_MESSAGE).
func (c *conn) pull(r protocol.PullRequest) *protocol.PullResponse {
	c.t.Helper()
	if r.RequestNum == 0 {
		r.RequestNum = 100
	}
	if r.TimeoutMillis == 0 {
		r.TimeoutMillis = -1
	}
	f := c.call(protocol.CodePullMessage, protocol.AppendPullRequest(nil, &r, protocol.CurrentVersion))
	switch f.Header.Code {
	case protocol.CodeNoMessage:
		return nil
	case protocol.CodeSuccess:
	default:
		c.t.Fatalf("PULL_MESSAGE: status %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
	resp, err := protocol.DecodePullResponse(f.Body, protocol.CurrentVersion)
	if err != nil {
		c.t.Fatal(err)
	}
	return &resp
}

func (c *conn) ack(subject, group, consumer string, begin, last int64, broadcast bool) {
	c.t.Helper()
	f := c.call(protocol.CodeAckRequest, protocol.AppendAckRequest(nil, &protocol.AckRequest{Subject: subject, ConsumerGroup: group, ConsumerID: consumer,
		PullOffsetBegin: begin, PullOffsetLast: last, Broadcast: broadcast}, protocol.CurrentVersion))
	if f.Header.Code != protocol.CodeSuccess {
		c.t.Fatalf("ACK: status %s: %s", protocol.CodeName(f.Header.Code, true), protocol.DecodeErrorBody(f.Body))
	}
}

func ids(r *protocol.PullResponse) []string {
	if r == nil {
		return nil
	}
	out := make([]string, len(r.Messages))
	for i, m := range r.Messages {
		out[i] = m.Message.MessageID
	}
	return out
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
