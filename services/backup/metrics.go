package backup

import "github.com/prometheus/client_golang/prometheus"

// metrics are the backup's Prometheus series (qmq_backup_…), on its own
// registry.
type metrics struct {
	reg            *prometheus.Registry
	rows           *prometheus.CounterVec // rows written, by kind
	storeErrors    prometheus.Counter
	storeUp        prometheus.Gauge
	writeSeconds   prometheus.Histogram
	fetchSeconds   *prometheus.HistogramVec
	syncErrors     prometheus.Counter
	badPayloads    prometheus.Counter
	unresolvedAcks prometheus.Counter
	skippedBytes   *prometheus.CounterVec
	skippedEntries prometheus.Counter
	skipReloads    *prometheus.CounterVec
	skipSubjects   prometheus.Gauge
}

func newMetrics(f func() Lag, pending func() int) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_backup_rows_written_total",
			Help: "Entries the store accepted, by kind: message, retry, dead, record."}, []string{"kind"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_backup_store_errors_total",
			Help: "Failed writes to the store (each is retried)."}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_backup_store_up",
			Help: "1 while the store accepts writes, 0 after a failed one until the next success."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "qmq_backup_store_write_seconds",
			Help: "Time of one batch write to the store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		fetchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "qmq_backup_fetch_seconds",
			Help:    "Time of one read of the slave's log (a request that finds nothing new is parked up to message.sync.timeout.ms).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"log"}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_backup_sync_errors_total",
			Help: "Failed connections or requests to the slave's sync port."}),
		badPayloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_backup_bad_payloads_total",
			Help: "Message records whose payload could not be read (not indexed)."}),
		unresolvedAcks: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_backup_unresolved_acks_total",
			Help: "Acked pull sequences whose pull the backup does not know (before its start, or older than rocks.db.ttl)."}),
		skippedEntries: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_backup_skipped_entries_total",
			Help: "Entries the store refused while it took the others of their batch (logged with the reason; not in the backup)."}),
		skipReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_backup_skip_reloads_total",
			Help: "Reloads of skip_backup.properties after it changed, by result: ok (read and in force), error (does not parse; the previous list is kept)."}, []string{"result"}),
		skipSubjects: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_backup_skip_subjects",
			Help: "Subjects skip_backup.properties leaves out of the backup now."}),
		skippedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_backup_skipped_bytes_total",
			Help: "Log bytes retention deleted before the backup read them."}, []string{"log"}),
	}
	m.storeUp.Set(1)
	// Both results exported from the start, so an alert can watch error.
	m.skipReloads.WithLabelValues("ok")
	m.skipReloads.WithLabelValues("error")
	m.reg.MustRegister(m.skipReloads, m.skipSubjects, m.rows, m.storeErrors, m.storeUp, m.writeSeconds, m.fetchSeconds, m.syncErrors, m.badPayloads, m.unresolvedAcks, m.skippedBytes, m.skippedEntries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_backup_lag_bytes", Help: "Bytes of the slave's message log not yet indexed (-1: unknown).",
			ConstLabels: prometheus.Labels{"log": "message"}}, func() float64 { return float64(f().MessageBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_backup_lag_bytes", Help: "Bytes of the slave's message log not yet indexed (-1: unknown).",
			ConstLabels: prometheus.Labels{"log": "action"}}, func() float64 { return float64(f().ActionBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_backup_lag_seconds",
			Help: "Age of the newest message indexed while the backup is behind the slave (0: caught up)."}, func() float64 { return f().Seconds }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_backup_pending_pulls",
			Help: "Pull ranges waiting for their acks (the pull map)."}, func() float64 { return float64(pending()) }),
	)
	return m
}
