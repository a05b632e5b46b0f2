package delay

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
)

// TestDelayOverAMinute: a delay of 70 s (longer than a minute, so the
// message crosses minute boundaries of the wheel, and a schedule bucket
// boundary with segment.scale.minute=5 when sent in the bucket's last 70 s)
// arrives no earlier than due and within maxLateness. It runs beside the
// package's other tests (t.Parallel): most of it is waiting.
func TestDelayOverAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 70 s")
	}
	t.Parallel()
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, func(s *Settings) { s.Store.SegmentScale = 5 * time.Minute })
	d.waitOnline()
	const subject = "delay.e2e.minute"
	col := consume(t, m.Endpoint(), subject)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	sentAt := time.Now()
	m70 := p.NewMessage(subject).SetDelay(70 * time.Second)
	// Due at the start of the next 5-minute bucket plus 2 s when that is
	// within 90 s; otherwise another 70 s delay.
	next := sentAt.Truncate(5 * time.Minute).Add(5*time.Minute + 2*time.Second)
	if next.Sub(sentAt) > 90*time.Second {
		next = sentAt.Add(75 * time.Second)
	}
	mNext := p.NewMessage(subject).SetDelayUntil(next)
	if err := p.Send(ctx, m70, mNext); err != nil {
		t.Fatal(err)
	}
	got := col.waitFor(t, 100*time.Second, m70.ID(), mNext.ID())
	late := checkOnTime(t, got, sentAt, m70.ID(), mNext.ID())
	t.Logf("70 s delay: lateness %v; due %s: lateness %v", late[0].Round(time.Millisecond), next.Format(time.TimeOnly), late[1].Round(time.Millisecond))
}
