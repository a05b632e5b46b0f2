package delay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
)

// TestDispatchDuringMetaserverOutage: with the metaserver down, due
// messages still go to the real-time group last known for their subject,
// and the real broker acknowledges them (dispatched counts only
// acknowledged messages).
func TestDispatchDuringMetaserverOutage(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m)
	// Routes are asked again every 100 ms: during the outage every ask fails.
	d := startDelay(t, m, func(s *Settings) { s.Dispatch.RouteRefresh = 100 * time.Millisecond })
	d.waitOnline()
	const subject = "delay.outage"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Send(ctx, p.NewMessage(subject).SetDelay(time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the first message to be dispatched (routes learnt)", func() bool { return d.srv.dispatched.Load() == 1 })
	// Due well after the metaserver has stopped, even on a loaded machine.
	if err := p.Send(ctx, p.NewMessage(subject).SetDelay(3*time.Second), p.NewMessage(subject).SetDelay(3500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	testutil.Eventually(t, 15*time.Second, "the messages due during the outage to be dispatched", func() bool { return d.srv.dispatched.Load() == 3 })
	if !strings.Contains(d.logs.String(), "sending to the last known ones") {
		t.Errorf("the delay server did not say it used the last known routes:\n%s", d.logs.String())
	}
}
