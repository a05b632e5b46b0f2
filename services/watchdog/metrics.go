package watchdog

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the watchdog's series, on its own registry (one per Server,
// so that tests running several watchdogs do not collide). Databases are
// labelled by their datasource_config url, which holds no password.
type metrics struct {
	reg     *prometheus.Registry
	leader  prometheus.Gauge
	pending *prometheus.GaugeVec
	up      *prometheus.GaugeVec
	resent  *prometheus.CounterVec
	failed  *prometheus.CounterVec
	marked  *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_watchdog_leader",
			Help: "1 while this watchdog leads its namespace and resends, 0 while it follows."}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "qmq_watchdog_rows_pending",
			Help: "Rows with status 0 in the client database's table at the start of the last scan (the leader's view)."}, []string{"db"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "qmq_watchdog_db_up",
			Help: "1 if the last scan of the client database worked, 0 if the database could not be used."}, []string{"db"}),
		resent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_watchdog_resent_total",
			Help: "Rows whose message a broker stored after the watchdog resent it (the row is then deleted)."}, []string{"db"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_watchdog_failed_total",
			Help: "Failed resends (the row's error count is raised and it is tried again next round)."}, []string{"db"}),
		marked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_watchdog_marked_total",
			Help: "Rows given up and marked: status -2 (cannot be sent as is) or -100 (refused by a broker, BLOCK)."}, []string{"db", "status"}),
	}
	m.reg.MustRegister(m.leader, m.pending, m.up, m.resent, m.failed, m.marked,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// forget removes the series of a database no longer served.
func (m *metrics) forget(url string) {
	m.pending.DeleteLabelValues(url)
	m.up.DeleteLabelValues(url)
}
