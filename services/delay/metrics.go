package delay

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the delay server's own series, on its own registry (one per
// Server, so that tests running several servers do not collide).
type metrics struct {
	reg        *prometheus.Registry
	received   prometheus.Counter
	rejected   *prometheus.CounterVec
	dispatched prometheus.Counter
	sendFails  prometheus.Counter
	lateness   prometheus.Histogram
	badFrames  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_received_total",
			Help: "Delay messages received and stored."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_delay_rejected_total",
			Help: "Messages refused at receipt, by QMQ send code."}, []string{"code"}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_dispatched_total",
			Help: "Due messages a real-time broker acknowledged."}),
		sendFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_dispatch_failures_total",
			Help: "Failed attempts to send due messages to a real-time broker (each is retried)."}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "qmq_delay_dispatch_lateness_seconds",
			Help:    "Time from a message's schedule time to its acknowledgement by a real-time broker.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300}}),
		badFrames: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_bad_frames_total",
			Help: "Connections closed for a malformed frame on broker.port."}),
	}
	m.reg.MustRegister(m.received, m.rejected, m.dispatched, m.sendFails, m.lateness, m.badFrames,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
