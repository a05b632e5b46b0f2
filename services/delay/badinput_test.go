package delay

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// TestBadInput: garbage frames close the connection (and only it), a
// malformed SEND body is PARAM_ERROR, an illegal subject, a missing id and
// an oversize message are BLOCK each, and the good messages of the same
// request are stored.
func TestBadInput(t *testing.T) {
	m := startMeta(t)
	d := startDelay(t, m, func(s *Settings) { s.MaxMessageSize = 2048 })
	d.waitOnline()
	addr := d.srv.Addr().String()

	// Garbage: not a QMQ frame.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("\xff", 64)))
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("the server should close a connection that sends garbage; read: %v", err)
	}
	nc.Close()
	testutil.Eventually(t, 5*time.Second, "the bad frame to be counted", func() bool { return counter(d.srv.m.badFrames) >= 1 })

	// A SEND_MESSAGE whose body stops inside a message.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, protocol.DefaultMaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Due within the store's loaded window (load.in.advance.min), where Stats counts it.
	good := delayMessage("delay.bad.input", "good", time.Now().Add(10*time.Minute).UnixMilli())
	body, err := protocol.AppendMessage(nil, &good)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(ctx, protocol.CodeSendMessage, body[:len(body)-3])
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Code != protocol.CodeParamError {
		t.Errorf("truncated body: code %d, want PARAM_ERROR (%d)", resp.Header.Code, protocol.CodeParamError)
	}

	// Per-message refusals beside a good message.
	illegal := delayMessage("has space", "illegal-subject", 0)
	noID := delayMessage("delay.bad.input", "", 0)
	big := delayMessage("delay.bad.input", "oversize", 0)
	big.Attrs = []protocol.Attr{{Key: "data", Value: strings.Repeat("x", 4000)}}
	_, rs := rawSend(t, addr, good, illegal, noID, big)
	codes := map[string]protocol.SendResult{}
	for _, r := range rs {
		codes[r.MessageID] = r
	}
	if len(rs) != 3 {
		t.Fatalf("want 3 refusals (illegal subject, no id, oversize), got %+v", rs)
	}
	for _, id := range []string{"illegal-subject", "", "oversize"} {
		if r, ok := codes[id]; !ok || r.Code != protocol.SendBlock {
			t.Errorf("message %q: %+v, want BLOCK", id, r)
		}
	}
	if r := codes["oversize"]; !strings.Contains(r.Remark, "per.message.size") {
		t.Errorf("oversize remark %q does not name per.message.size", r.Remark)
	}
	testutil.Eventually(t, 5*time.Second, "the good message to be scheduled", func() bool { return d.srv.scheduled() == 1 })
}

func counter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// TestUnregisteredExplains: a delay server the metaserver does not know
// logs the metaserver's explanation and what to register, keeps retrying,
// and refuses messages meanwhile (BROKER_READ_ONLY, so producers go to
// another delay group).
func TestUnregisteredExplains(t *testing.T) {
	m := startMeta(t)
	h := &delayHarness{t: t, meta: m, root: t.TempDir()}
	h.start(-1)
	t.Cleanup(h.stop)
	testutil.Eventually(t, 5*time.Second, "the metaserver's explanation in the log", func() bool {
		l := h.logs.String()
		return strings.Contains(l, "cannot find broker meta") && strings.Contains(l, "AddBroker --role=5") && strings.Contains(l, delayHost)
	})
	if h.srv.Online() {
		t.Fatal("an unregistered delay server is online")
	}
	_, rs := rawSend(t, h.srv.Addr().String(), delayMessage("delay.unregistered", "m1", time.Now().Add(time.Minute).UnixMilli()))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerReadOnly {
		t.Fatalf("send before online: %+v", rs)
	}
}
