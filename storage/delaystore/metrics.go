package delaystore

import "github.com/prometheus/client_golang/prometheus"

// metrics of one store.
type metrics struct {
	reg         prometheus.Registerer
	cs          []prometheus.Collector
	openSeconds prometheus.Gauge
	appended    prometheus.Counter
	dispatched  prometheus.Counter
	cancelled   prometheus.Counter
	deleted     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	m := &metrics{
		reg:         reg,
		openSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_delay_store_open_seconds", Help: "Time the last Open took to recover, replay and load."}),
		appended:    prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_store_appended_total", Help: "Delay messages appended to the message log."}),
		dispatched:  prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_store_dispatched_total", Help: "Entries marked dispatched."}),
		cancelled:   prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_store_cancelled_total", Help: "Scheduled messages cancelled."}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_delay_store_retention_deleted_total",
			Help: "Segments and buckets deleted by retention, by log."}, []string{"log"}),
	}
	wheelSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_store_wheel_entries", Help: "Scheduled entries in the in-memory wheel."},
		func() float64 { return float64(s.Stats().InWheel) })
	lateness := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_store_oldest_due_lateness_seconds", Help: "How late the oldest due entry in the wheel is."},
		func() float64 { return s.Stats().OldestDueLateness.Seconds() })
	m.cs = []prometheus.Collector{m.openSeconds, m.appended, m.dispatched, m.cancelled, m.deleted, wheelSize, lateness}
	if reg != nil {
		for i, c := range m.cs {
			if err := reg.Register(c); err != nil {
				for _, r := range m.cs[:i] {
					reg.Unregister(r)
				}
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m == nil || m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
