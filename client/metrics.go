package client

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/metricsutil"
)

// The client's Prometheus metrics (names in doc.go). Without a registerer
// every metric is a no-op value, so the hot paths never test for "metrics
// enabled"; with one, a consumer resolves its label children once, at
// construction, and a producer once per subject.

type counter interface {
	Inc()
	Add(float64)
}

type observer interface{ Observe(float64) }

type gauge interface{ Set(float64) }

// nop is every metric when no registerer was given.
type nop struct{}

func (nop) Inc()            {}
func (nop) Add(float64)     {}
func (nop) Observe(float64) {}
func (nop) Set(float64)     {}

var (
	// Round trips: long polls and sends, 1 ms to 20 s.
	rpcBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20}
	// Handler times and message ages: 1 ms to ~17 min.
	ageBuckets = prometheus.ExponentialBuckets(0.001, 4, 11)
)

// producerMetrics are a producer's series. QMQ's producer counters are
// process-wide and unlabelled; the send time is per subject.
type producerMetrics struct {
	send, sendOK, sendError, sendFail, resend, queueFull counter
	brokerTime                                           observer

	sendTime  *prometheus.HistogramVec // nil: disabled
	bySubject sync.Map                 // subject -> observer
}

func newProducerMetrics(reg prometheus.Registerer) (*producerMetrics, error) {
	m := &producerMetrics{send: nop{}, sendOK: nop{}, sendError: nop{}, sendFail: nop{}, resend: nop{}, queueFull: nop{}, brokerTime: nop{}}
	if reg == nil {
		return m, nil
	}
	var err error
	c := func(name, help string) counter {
		if err != nil {
			return nop{}
		}
		var x prometheus.Counter
		x, err = metricsutil.RegisterOrExisting(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
		return x
	}
	m.send = c("qmq_client_send_total", "Messages given to Send or SendAsync (QMQ: qmq_client_send_count).")
	m.sendOK = c("qmq_client_send_ok_total", "Messages stored by a broker, duplicates included (QMQ: qmq_client_send_ok_count).")
	m.sendError = c("qmq_client_send_error_total", "Failed send tries, retried or not (QMQ: qmq_client_send_error_count).")
	m.sendFail = c("qmq_client_send_fail_total", "Messages that failed for good: tries used up, BLOCK, queue full (QMQ: qmq_client_send_fail_count).")
	m.resend = c("qmq_client_resend_total", "Send tries after the first (QMQ: qmq_client_resend_count).")
	m.queueFull = c("qmq_client_enter_queue_fail_total", "SendAsync calls refused because the send queue was full (QMQ: qmq_client_enter_queue_fail).")
	if err != nil {
		return nil, err
	}
	bt, err := metricsutil.RegisterOrExisting(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "qmq_client_producer_send_broker_seconds", Help: "Round trip of one SEND_MESSAGE request (QMQ: qmq_client_producer_send_broker_time).",
		Buckets: rpcBuckets,
	}))
	if err != nil {
		return nil, err
	}
	m.brokerTime = bt
	m.sendTime, err = metricsutil.RegisterOrExisting(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "qmq_client_producer_send_message_seconds", Help: "From Send or SendAsync to the message's final outcome, tries included (QMQ: qmq_client_producer_send_message_time).",
		Buckets: rpcBuckets,
	}, []string{"subject"}))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// subject returns the send-time observer of subject.
func (m *producerMetrics) subject(s string) observer {
	if m.sendTime == nil {
		return nop{}
	}
	if o, ok := m.bySubject.Load(s); ok {
		return o.(observer)
	}
	o, _ := m.bySubject.LoadOrStore(s, m.sendTime.WithLabelValues(s))
	return o.(observer)
}

// finished records the outcomes of items sent since start. Consecutive
// items of one subject share an observer lookup.
func (m *producerMetrics) finished(items []*outgoing, start time.Time) {
	if m.sendTime == nil {
		return
	}
	took := time.Since(start).Seconds()
	var last string
	var obs observer
	for _, it := range items {
		m.outcome(it)
		if obs == nil || it.m.subject != last {
			last, obs = it.m.subject, m.subject(it.m.subject)
		}
		obs.Observe(took)
	}
}

// finishedOne records the outcome of one item sent since start.
func (m *producerMetrics) finishedOne(it *outgoing, start time.Time) {
	if m.sendTime == nil {
		return
	}
	m.outcome(it)
	m.subject(it.m.subject).Observe(time.Since(start).Seconds())
}

func (m *producerMetrics) outcome(it *outgoing) {
	failedTries := it.tries
	if it.err == nil {
		m.sendOK.Inc()
		failedTries--
	} else {
		m.sendFail.Inc()
	}
	if failedTries > 0 {
		m.sendError.Add(float64(failedTries))
	}
	if it.tries > 1 {
		m.resend.Add(float64(it.tries - 1))
	}
}

// consumerVecs are the consumer series of one registerer.
type consumerVecs struct {
	pulled, pullError, acked, ackError     *prometheus.CounterVec
	handleFail, deadQueue, sendBackError   *prometheus.CounterVec
	pullTime, ackTime, handle, createToHnd *prometheus.HistogramVec
	online                                 *prometheus.GaugeVec
}

func newConsumerVecs(reg prometheus.Registerer) (*consumerVecs, error) {
	labels := []string{"subject", "group"}
	var err error
	cv := func(name, help string) *prometheus.CounterVec {
		if err != nil {
			return nil
		}
		var v *prometheus.CounterVec
		v, err = metricsutil.RegisterOrExisting(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
		return v
	}
	hv := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		if err != nil {
			return nil
		}
		var v *prometheus.HistogramVec
		v, err = metricsutil.RegisterOrExisting(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
		return v
	}
	v := &consumerVecs{
		pulled:        cv("qmq_pull_total", "Messages received by pulls, per pulled subject (QMQ: qmq_pull_count)."),
		pullError:     cv("qmq_pull_error_total", "Pull requests that failed (QMQ: qmq_pull_error)."),
		acked:         cv("qmq_pull_ack_sendnum_total", "Messages acknowledged to the broker (QMQ: qmq_pull_ack_sendnum_qps)."),
		ackError:      cv("qmq_pull_ack_error_total", "ACK requests that failed; they are retried (QMQ: qmq_pull_ack_error)."),
		handleFail:    cv("qmq_pull_handle_fail_total", "Run handler calls that returned an error or panicked (QMQ: qmq_pull_handleFail_count)."),
		deadQueue:     cv("qmq_deadqueue_send_total", "Messages sent to the dead-letter subject (QMQ: qmq_deadqueue_send_count)."),
		sendBackError: cv("qmq_pull_send_msg_error_total", "Failed sends of a message to its retry or dead-letter subject; they are tried again (QMQ: qmq_pull_send_msg_error)."),
		pullTime:      hv("qmq_pull_seconds", "Round trip of one pull request, long poll included (QMQ: qmq_pull_timer).", rpcBuckets),
		ackTime:       hv("qmq_pull_ack_seconds", "Round trip of one ACK request (QMQ: qmq_pull_ack_timer).", rpcBuckets),
		handle:        hv("qmq_pull_handle_seconds", "Time in the Run handler (QMQ: qmq_pull_handle_timer).", ageBuckets),
		createToHnd:   hv("qmq_pull_create_to_handle_seconds", "From a message's qmq_createTime to the start of its Run handler (QMQ: qmq_pull_createToHandle_timer).", ageBuckets),
	}
	if err != nil {
		return nil, err
	}
	if v.online, err = metricsutil.RegisterOrExisting(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "qmq_client_consumer_online", Help: "1 while the consumer pulls, 0 while the metaserver has it forced offline.",
	}, labels)); err != nil {
		return nil, err
	}
	return v, nil
}

// consumerMetrics are a consumer's pre-resolved series (subject = the
// subscribed subject).
type consumerMetrics struct {
	vecs                                 *consumerVecs // nil: disabled
	group                                string
	handle, createToHandle               observer
	handleFail, deadQueue, sendBackError counter
	online                               gauge
}

// pullMetrics are the series of one pulled subject (the subscribed one or
// its retry subject).
type pullMetrics struct {
	pulled, pullError, acked, ackError counter
	pullTime, ackTime                  observer
}

func newConsumerMetrics(reg prometheus.Registerer, subject, group string) (*consumerMetrics, error) {
	m := &consumerMetrics{group: group, handle: nop{}, createToHandle: nop{}, handleFail: nop{}, deadQueue: nop{}, sendBackError: nop{}, online: nop{}}
	if reg == nil {
		return m, nil
	}
	v, err := newConsumerVecs(reg)
	if err != nil {
		return nil, err
	}
	m.vecs = v
	m.handle = v.handle.WithLabelValues(subject, group)
	m.createToHandle = v.createToHnd.WithLabelValues(subject, group)
	m.handleFail = v.handleFail.WithLabelValues(subject, group)
	m.deadQueue = v.deadQueue.WithLabelValues(subject, group)
	m.sendBackError = v.sendBackError.WithLabelValues(subject, group)
	g := v.online.WithLabelValues(subject, group)
	g.Set(1)
	m.online = g
	return m, nil
}

// pull returns the series of a pulled subject.
func (m *consumerMetrics) pull(subject string) *pullMetrics {
	if m.vecs == nil {
		return &pullMetrics{pulled: nop{}, pullError: nop{}, acked: nop{}, ackError: nop{}, pullTime: nop{}, ackTime: nop{}}
	}
	v := m.vecs
	return &pullMetrics{
		pulled: v.pulled.WithLabelValues(subject, m.group), pullError: v.pullError.WithLabelValues(subject, m.group),
		acked: v.acked.WithLabelValues(subject, m.group), ackError: v.ackError.WithLabelValues(subject, m.group),
		pullTime: v.pullTime.WithLabelValues(subject, m.group), ackTime: v.ackTime.WithLabelValues(subject, m.group),
	}
}

// metricsError explains a registration failure.
func metricsError(who string, err error) error {
	return fmt.Errorf("%s: cannot register metrics with the registerer given by WithRegisterer (is another collector using a qmq_* name with other labels?): %w", who, err)
}
