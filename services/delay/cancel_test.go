package delay

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/cmd/qmq/tools"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// withSecret gives the delay server the test metaserver's delay.admin.secret.
func withSecret(s *Settings) { s.AdminSecret = delayadmin.NewSecret(metatest.DelayAdminSecret) }

// cancelAnswer is what `qmq tools CancelDelay` prints.
type cancelAnswer struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Data    *struct {
		Cancelled   bool   `json:"cancelled"`
		BrokerGroup string `json:"brokerGroup"`
	} `json:"data"`
}

// toolsCancel runs `qmq tools CancelDelay` against m with token.
func toolsCancel(t *testing.T, m *metatest.Server, token, subject, id string) (cancelAnswer, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := tools.Main([]string{"CancelDelay", "--metaserver=" + m.HTTP(), "--token=" + token, "--subject=" + subject, "--messageId=" + id}, &out, &errOut)
	var a cancelAnswer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("CancelDelay printed no JSON (exit %d): %q %q", code, out.String(), errOut.String())
	}
	t.Logf("CancelDelay %s/%s: exit %d: %s", subject, id, code, strings.TrimSpace(out.String()))
	return a, code
}

func sendDelayed(t *testing.T, endpoint string, msgs func(p *client.Producer) []*client.Message) []*client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, endpoint, client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	ms := msgs(p)
	if err := p.Send(ctx, ms...); err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestCancelDelay: a message cancelled before it is due is never delivered,
// not even after a restart of the delay server; cancelling a delivered
// message answers "unknown or already delivered".
func TestCancelDelay(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, withSecret)
	d.waitOnline()
	const subject = "delay.cancel"
	col := consume(t, m.Endpoint(), subject)
	ms := sendDelayed(t, m.Endpoint(), func(p *client.Producer) []*client.Message {
		return []*client.Message{
			p.NewMessage(subject).SetDelay(time.Second),     // delivered, then cancelled: too late
			p.NewMessage(subject).SetDelay(4 * time.Second), // cancelled
			p.NewMessage(subject).SetDelay(5 * time.Second), // kept: shows the server dispatched past the cancelled one's due time
		}
	})
	early, gone, kept := ms[0], ms[1], ms[2]

	a, code := toolsCancel(t, m, metatest.Token, subject, gone.ID())
	if code != 0 || a.Status != 0 || a.Data == nil || !a.Data.Cancelled || a.Data.BrokerGroup != delayGroup {
		t.Fatalf("cancel before due: exit %d, %+v; want cancelled by %s", code, a, delayGroup)
	}
	// Restart: the cancel is a dispatch-log record and must survive.
	d.restart()
	d.waitOnline()

	col.waitFor(t, 15*time.Second, early.ID())
	a, code = toolsCancel(t, m, metatest.Token, subject, early.ID())
	if code != 0 || a.Status != 0 || a.Data == nil || a.Data.Cancelled || !strings.Contains(a.Message, "unknown or already delivered") {
		t.Errorf("cancel after delivery: exit %d, %+v; want not cancelled, \"unknown or already delivered\"", code, a)
	}
	col.waitFor(t, 15*time.Second, kept.ID())
	time.Sleep(maxLateness) // past the cancelled message's due time plus the allowed lateness
	if got, ok := col.snapshot()[gone.ID()]; ok {
		t.Errorf("cancelled message %s was delivered at %v", gone.ID(), got.at)
	}
	a, _ = toolsCancel(t, m, metatest.Token, subject, gone.ID())
	if a.Data == nil || a.Data.Cancelled {
		t.Errorf("a second cancel: %+v; want not cancelled", a)
	}
}

// TestCancelDelayRefusesBadCredentials: a wrong API token is refused by the
// metaserver; a delay server with another delay.admin.secret, and an
// unsigned CANCEL_DELAY sent straight to broker.port, are refused by the
// delay server with one log line; the message is still delivered.
func TestCancelDelayRefusesBadCredentials(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, func(s *Settings) { s.AdminSecret = delayadmin.NewSecret("another-secret-0123456789abcdef") })
	d.waitOnline()
	const subject = "delay.cancel.refused"
	col := consume(t, m.Endpoint(), subject)
	ms := sendDelayed(t, m.Endpoint(), func(p *client.Producer) []*client.Message {
		return []*client.Message{p.NewMessage(subject).SetDelay(3 * time.Second)}
	})
	id := ms[0].ID()

	a, code := toolsCancel(t, m, "wrong-token", subject, id)
	if code == 0 || a.Status == 0 || !strings.Contains(a.Message, "Api Token") {
		t.Errorf("wrong token: exit %d, %+v; want refused", code, a)
	}
	a, code = toolsCancel(t, m, metatest.Token, subject, id)
	if code == 0 || a.Status == 0 || !strings.Contains(a.Message, "bad signature") {
		t.Errorf("wrong delay.admin.secret: exit %d, %+v; want refused for a bad signature", code, a)
	}
	// An attacker on broker.port: no signature at all, then a forged one.
	for _, r := range []delayadmin.Request{
		{Group: delayGroup, Subject: subject, MessageID: id, UnixMillis: time.Now().UnixMilli()},
		{Group: delayGroup, Subject: subject, MessageID: id, UnixMillis: time.Now().UnixMilli(), Nonce: "00", MAC: strings.Repeat("ab", 32)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := remoting.Dial(ctx, d.srv.Addr().String(), 0)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		resp, err := c.Call(ctx, protocol.CodeCancelDelay, r.Append(nil))
		_ = c.Close()
		cancel()
		if err != nil || resp.Header.Code != protocol.CodeBrokerReject {
			t.Errorf("unsigned CANCEL_DELAY: %v, code %d; want BROKER_REJECT", err, resp.Header.Code)
		}
	}
	if n := d.logs.Count("CANCEL_DELAY refused"); n != 1 {
		t.Errorf("the delay server logged %d refusal lines for three refusals in a row; want 1 (rate-limited)", n)
	}
	if strings.Contains(d.logs.String(), metatest.DelayAdminSecret) || strings.Contains(d.logs.String(), "another-secret") {
		t.Error("a secret appears in the delay server's log")
	}
	col.waitFor(t, 15*time.Second, id)
}
