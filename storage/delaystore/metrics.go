package delaystore

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

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
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_store_pending_messages",
		Help: "Delay messages scheduled and not yet dispatched or cancelled, in the whole store (every bucket up to two years ahead)."},
		func() float64 { return float64(s.Stats().Pending) })
	subjects := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_store_pending_subjects",
		Help: "Subjects with pending delay messages (the per-subject series show at most the top ones)."},
		func() float64 { return float64(s.Stats().Subjects) })
	m.cs = []prometheus.Collector{m.openSeconds, m.appended, m.dispatched, m.cancelled, m.deleted, wheelSize, lateness,
		pending, subjects, &subjectCollector{s: s}}
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

// MetricSubjects is how many subjects qmq_delay_store_subject_pending_messages
// shows: those with the most pending messages. A label per subject of a
// store that may serve thousands of them would make every scrape, and the
// Prometheus series count, follow the application's subject naming; the
// ones worth watching are those with most waiting, and /subjects on the
// delay server's HTTP port lists every one.
const MetricSubjects = 50

var subjectPendingDesc = prometheus.NewDesc("qmq_delay_store_subject_pending_messages",
	"Delay messages of a subject scheduled and not yet dispatched or cancelled, for the 50 subjects with most (qmq_delay_store_pending_subjects says how many there are).",
	[]string{"subject"}, nil)

// subjectCollector exports the top MetricSubjects subjects' pending counts.
type subjectCollector struct{ s *Store }

func (c *subjectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- subjectPendingDesc }

func (c *subjectCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.s.topSubjects(MetricSubjects) {
		ch <- prometheus.MustNewConstMetric(subjectPendingDesc, prometheus.GaugeValue, float64(t.n), t.name)
	}
}

// topSubjects returns the n subjects with most pending messages (ties by
// name, so the set is stable between scrapes).
func (s *Store) topSubjects(n int) []subjectTotal {
	s.mu.Lock()
	all := make([]subjectTotal, 0, len(s.totals))
	for _, t := range s.totals {
		all = append(all, *t)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].name < all[j].name
	})
	return all[:min(n, len(all))]
}
