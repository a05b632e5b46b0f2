package delay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/storage/vfs"
)

// TestDispatchWaitsForTheBroker: messages that come due while the
// subject's only real-time broker is down are retried, not dropped, and
// reach the consumer once the broker is back.
func TestDispatchWaitsForTheBroker(t *testing.T) {
	m := startMeta(t)
	b := startBroker(t, m)
	d := startDelay(t, m, nil)
	d.waitOnline()
	const subject = "delay.broker.down"
	col := consume(t, m.Endpoint(), subject)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	// The consumer group must exist at the broker before it goes down: a
	// group the broker first sees after its restart starts at the newest
	// message (QMQ's rule), which may already be past the dispatched ones.
	probe := p.NewMessage(subject)
	if err := p.Send(ctx, probe); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, 10*time.Second, probe.ID())
	// The broker goes down first: the messages are stored (sending them
	// needs only the delay group) and come due with no broker to take them.
	b.stop()
	var ids []string
	var msgs []*client.Message
	for i := range 5 {
		msg := p.NewMessage(subject).SetDelay(time.Second + time.Duration(i)*100*time.Millisecond)
		msgs, ids = append(msgs, msg), append(ids, msg.ID())
	}
	if err := p.Send(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // all due, none deliverable
	if n := d.srv.dispatched.Load(); n != 0 {
		t.Fatalf("%d messages counted dispatched with the broker down", n)
	}
	if d.srv.parked.Load() != 5 {
		t.Errorf("parked %d, want 5", d.srv.parked.Load())
	}
	if !strings.Contains(d.logs.String(), "retrying") {
		t.Errorf("the failed sends were not logged:\n%s", d.logs.String())
	}
	b.start()
	col.waitFor(t, 20*time.Second, ids...)
	testutil.Eventually(t, 5*time.Second, "5 messages counted dispatched", func() bool { return d.srv.dispatched.Load() == 5 })
}

// TestDiskFullRefusesWithReason: below the free-space reserve the delay
// server answers BROKER_READ_ONLY with the reason (producers move to
// another delay group), heartbeats read-only and /health says degraded;
// once space is back it heartbeats writable again by itself (producers
// are not sent to it meanwhile, so no append would find out).
func TestDiskFullRefusesWithReason(t *testing.T) {
	m := startMeta(t)
	var free atomic.Int64
	free.Store(1 << 20)
	fs := vfs.NewUsageFS(vfs.Default(), func(string) (vfs.Usage, error) { return vfs.Usage{Total: 1 << 30, Free: free.Load()}, nil })
	d := startDelayOn(t, m, fs, func(s *Settings) { s.Store.DiskFreeMin = 100 << 20 })
	d.waitOnline()
	_, rs := rawSend(t, d.srv.Addr().String(), delayMessage("delay.disk.full", "m1", time.Now().Add(time.Minute).UnixMilli()))
	if len(rs) != 1 || rs[0].Code != protocol.SendBrokerReadOnly || !protocol.IsDiskFullRemark(rs[0].Remark) || !strings.Contains(rs[0].Remark, "free space") {
		t.Fatalf("answer %+v; want BROKER_READ_ONLY with a disk-full remark", rs)
	}
	t.Logf("remark: %s", rs[0].Remark)
	if d.srv.brokerState() != protocol.BrokerStateR {
		t.Errorf("heartbeat state %d, want read-only (%d)", d.srv.brokerState(), protocol.BrokerStateR)
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/health", d.srv.HTTPAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h healthReport
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || h.Status != "degraded" || h.DiskFull == "" || h.Role != "DELAY_MASTER" {
		t.Errorf("/health %d %+v; want 503 degraded with the reason", resp.StatusCode, h)
	}

	free.Store(1 << 30)
	testutil.Eventually(t, 5*time.Second, "the server to say writable again", func() bool { return d.srv.brokerState() == protocol.BrokerStateRW })
	time.Sleep(1100 * time.Millisecond) // the store measures free space at most once a second
	if _, rs := rawSend(t, d.srv.Addr().String(), delayMessage("delay.disk.full", "m2", time.Now().Add(time.Minute).UnixMilli())); len(rs) != 0 {
		t.Errorf("after space came back: %+v", rs)
	}
}

// TestRefusedSubjectDoesNotBlockOthers: a message the real-time broker
// refuses for good (larger than its max.message.size, which the delay
// server's per.message.size allowed) is parked and retried, never
// dropped, while the other subjects' messages still go out on time; the
// parked message shows in /health's parked and due lag.
func TestRefusedSubjectDoesNotBlockOthers(t *testing.T) {
	m := startMeta(t)
	startBroker(t, m, func(s *broker.Settings) { s.MaxMessageSize = 64 << 10 })
	d := startDelay(t, m, nil)
	d.waitOnline()
	col := consume(t, m.Endpoint(), "delay.fine")
	now := time.Now()
	big := delayMessage("delay.too.big", "big", now.Add(time.Second).UnixMilli())
	for i := range 4 {
		big.Attrs = append(big.Attrs, protocol.Attr{Key: fmt.Sprint("data", i), Value: strings.Repeat("x", 30000)})
	}
	if _, rs := rawSend(t, d.srv.Addr().String(), big, delayMessage("delay.fine", "fine", now.Add(2*time.Second).UnixMilli())); len(rs) != 0 {
		t.Fatalf("delay server refused: %+v", rs)
	}
	got := col.waitFor(t, 10*time.Second, "fine")
	checkOnTime(t, got, now, "fine")
	testutil.Eventually(t, 5*time.Second, "the refused message to be parked", func() bool { return d.srv.parked.Load() == 1 })
	if lag := d.srv.dueLag(); lag < time.Second {
		t.Errorf("due lag %v with a message parked since %v", lag, time.UnixMilli(big.ExpireOrScheduleTime))
	}
	if !strings.Contains(d.logs.String(), "a broker refused due messages") {
		t.Errorf("the refusal was not logged:\n%s", d.logs.String())
	}
	testutil.Eventually(t, 5*time.Second, "1 message counted dispatched", func() bool { return d.srv.dispatched.Load() == 1 })
	time.Sleep(500 * time.Millisecond) // retries of the refused one go on
	if n := d.srv.dispatched.Load(); n != 1 {
		t.Errorf("dispatched %d, want 1 (the refused message is not counted)", n)
	}
}
