package delay

import (
	"context"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
)

// TestDelayBurst: 2000 messages (QMQ_DELAY_BURST=n for more), all due at the same second, sent in
// batches; each arrives, none early, and the test logs the send rate and
// how late the last one came (a figure, not a bound: the machine is shared).
func TestDelayBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("a 2000-message burst")
	}
	m := startMeta(t)
	startBroker(t, m)
	d := startDelay(t, m, nil)
	d.waitOnline()
	const subject = "delay.burst"
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("QMQ_DELAY_BURST")); err == nil && v > 0 {
		n = v // a larger burst, by hand
	}
	col := consume(t, m.Endpoint(), subject)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := client.NewProducer(ctx, m.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	due := time.Now().Add(4*time.Second + time.Duration(n/5000)*time.Second)
	ids := make([]string, 0, n)
	start := time.Now()
	for len(ids) < n {
		batch := make([]*client.Message, 0, 50)
		for range min(50, n-len(ids)) {
			msg := p.NewMessage(subject).SetDelayUntil(due)
			batch = append(batch, msg)
			ids = append(ids, msg.ID())
		}
		if err := p.Send(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if time.Now().After(due) {
		t.Fatalf("sending took %v, past the due time: the figures would mean nothing", took)
	}
	got := col.waitFor(t, 60*time.Second, ids...)
	late := checkLateness(t, got, ids)
	t.Logf("%d delay messages sent in %v (%.0f msg/s, batches of 50); arrival after the due time: median %v, p99 %v, last %v",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), late[len(late)/2].Round(time.Millisecond),
		late[len(late)*99/100].Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond))
}

// checkLateness fails for a message that arrived before its schedule time
// and returns every lateness, sorted.
func checkLateness(t *testing.T, got map[string]arrival, ids []string) []time.Duration {
	t.Helper()
	late := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		a := got[id]
		l := a.at.Sub(a.scheduled)
		if l < 0 {
			t.Errorf("message %s arrived %v before its schedule time", id, -l)
		}
		late = append(late, l)
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	return late
}
