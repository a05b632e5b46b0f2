package client

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// metric returns the value of the series name{labels} in reg: a counter's
// or gauge's value, a histogram's sample count; ok false if absent.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metric(t, reg, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v; have: %s", name, labels, metricNames(t, reg))
	}
	return v
}

func metricNames(t *testing.T, reg prometheus.Gatherer) string {
	mfs, _ := reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func TestProducerMetrics(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	reg := prometheus.NewRegistry()
	p := newTestProducer(t, endpoint, WithRegisterer(reg), WithMaxRetries(3), WithQueueSize(1), WithSenders(1))
	// A second producer on the same registerer shares the series.
	newTestProducer(t, endpoint, WithRegisterer(reg))

	sendN(t, p, "pm.ok", 3, nil)
	b.set(func(b *fakeBroker) {
		b.failSend = func(m *protocol.Message) int32 {
			if m.Subject == "pm.block" {
				return protocol.SendBlock
			}
			return protocol.SendBrokerBusy
		}
	})
	if err := p.Send(context.Background(), p.NewMessage("pm.busy")); err == nil {
		t.Fatal("busy send succeeded")
	}
	if err := p.Send(context.Background(), p.NewMessage("pm.block")); err == nil {
		t.Fatal("blocked send succeeded")
	}
	for name, want := range map[string]float64{
		"qmq_client_send_total":       5,
		"qmq_client_send_ok_total":    3,
		"qmq_client_send_fail_total":  2,
		"qmq_client_send_error_total": 3 + 1, // busy: 3 tries; block: 1
		"qmq_client_resend_total":     2,
	} {
		if got := mustMetric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := mustMetric(t, reg, "qmq_client_producer_send_message_seconds", "subject", "pm.ok"); got != 3 {
		t.Errorf("send time samples of pm.ok = %v, want 3", got)
	}
	if got := mustMetric(t, reg, "qmq_client_producer_send_message_seconds", "subject", "pm.busy"); got != 1 {
		t.Errorf("send time samples of pm.busy = %v, want 1", got)
	}
	if got := mustMetric(t, reg, "qmq_client_producer_send_broker_seconds"); got != 3+3+1 {
		t.Errorf("SEND_MESSAGE requests = %v, want 7", got)
	}

	// Async: a full queue counts as enter_queue_fail and fail.
	b.set(func(b *fakeBroker) { b.failSend, b.sendDelay = nil, 300*time.Millisecond })
	done := make(chan error, 4)
	full := 0
	for i := 0; i < 4; i++ {
		if err := p.SendAsync(p.NewMessage("pm.async"), func(_ *Message, err error) { done <- err }); errors.Is(err, ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4-full; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if full == 0 {
		t.Fatal("queue of 1 never full")
	}
	if got := mustMetric(t, reg, "qmq_client_enter_queue_fail_total"); got != float64(full) {
		t.Errorf("enter_queue_fail = %v, want %d", got, full)
	}
	if got := mustMetric(t, reg, "qmq_client_send_ok_total"); got != 3+float64(4-full) {
		t.Errorf("send_ok after async = %v", got)
	}
	if got := mustMetric(t, reg, "qmq_client_producer_send_message_seconds", "subject", "pm.async"); got != float64(4-full) {
		t.Errorf("async send time samples = %v, want %d", got, 4-full)
	}
}

func TestConsumerMetrics(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	reg := prometheus.NewRegistry()
	p := newTestProducer(t, endpoint)
	sendN(t, p, "cm", 4, nil)
	c := newTestConsumer(t, endpoint, "cm", "grp", WithRegisterer(reg), WithMaxRetries(2))
	// Another consumer of the same subject and group on the same registerer.
	newTestConsumer(t, endpoint, "cm", "grp", WithRegisterer(reg), WithClientID("other"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(ctx context.Context, m *Message) error {
			if m.Property("i") == "0" {
				return errors.New("always fails") // retried once, then dead
			}
			return nil
		})
	}()
	testutil.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(b.stored(DeadLetterSubject("cm", "grp"))) == 1 })
	retry := RetrySubject("cm", "grp")
	var a, r float64
	deadline := time.Now().Add(5 * time.Second)
	for ; (a != 4 || r != 1) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		a, _ = metric(t, reg, "qmq_pull_ack_sendnum_total", "subject", "cm", "group", "grp")
		r, _ = metric(t, reg, "qmq_pull_ack_sendnum_total", "subject", retry, "group", "grp")
	}
	if a != 4 || r != 1 {
		t.Fatalf("acknowledged %v of cm and %v of %s, want 4 and 1; acks of the broker: %v %v", a, r, retry, b.ackRanges("cm"), b.ackRanges(retry))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		subject string
		want    float64
	}{
		{"qmq_pull_total", "cm", 4},
		{"qmq_pull_total", retry, 1},
		{"qmq_pull_handle_fail_total", "cm", 2},
		{"qmq_pull_handle_seconds", "cm", 5},
		{"qmq_pull_create_to_handle_seconds", "cm", 5},
		{"qmq_deadqueue_send_total", "cm", 1},
		{"qmq_pull_error_total", "cm", 0},
		{"qmq_client_consumer_online", "cm", 1},
	} {
		if got := mustMetric(t, reg, c.name, "subject", c.subject, "group", "grp"); got != c.want {
			t.Errorf("%s{subject=%q} = %v, want %v", c.name, c.subject, got, c.want)
		}
	}
	if got := mustMetric(t, reg, "qmq_pull_seconds", "subject", "cm", "group", "grp"); got < 1 {
		t.Errorf("pull round trips = %v", got)
	}
	if got := mustMetric(t, reg, "qmq_pull_ack_seconds", "subject", "cm", "group", "grp"); got < 1 {
		t.Errorf("ack round trips = %v", got)
	}
}

// Without WithRegisterer nothing is registered anywhere.
func TestNoMetricsByDefault(t *testing.T) {
	endpoint, mc := startMeta(t)
	startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	sendN(t, p, "nm", 1, nil)
	c := newTestConsumer(t, endpoint, "nm", "grp")
	pullAll(t, c, 1)[0].Ack(nil)
	if names := metricNames(t, prometheus.DefaultGatherer); strings.Contains(names, "qmq_") {
		t.Fatalf("default registry has qmq metrics: %s", names)
	}
}

// A registerer that already has a qmq_* name with other labels is an error
// that says what to do.
func TestMetricsConflict(t *testing.T) {
	endpoint, mc := startMeta(t)
	startBroker(t, "g1", mc)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_pull_total", Help: "x"}, []string{"other"}))
	_, err := NewConsumer(context.Background(), endpoint, "mc", "grp", WithRegisterer(reg))
	if err == nil || !strings.Contains(err.Error(), "WithRegisterer") {
		t.Fatalf("err = %v", err)
	}
}
