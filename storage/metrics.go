package storage

import "github.com/prometheus/client_golang/prometheus"

// metrics of the store as a whole; each log registers its own (segments, bytes, latency).
type metrics struct {
	recoverySeconds  prometheus.Gauge
	replayLag        prometheus.Gauge
	dispatchErrors   prometheus.Counter
	checkpoints      *prometheus.CounterVec
	retentionDeleted *prometheus.CounterVec
	retentionKept    prometheus.Gauge
	retentionForced  prometheus.Counter
	diskFree         prometheus.Gauge
	diskFull         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recoverySeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_store_recovery_seconds", Help: "Time the last Open took to recover and replay."}),
		replayLag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_store_replay_lag_bytes", Help: "Message-log bytes not yet dispatched into consumer logs."}),
		dispatchErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_store_dispatch_errors_total", Help: "Failed consumer-log dispatch attempts (retried)."}),
		checkpoints:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_store_checkpoints_total", Help: "Checkpoints written, by kind."}, []string{"kind"}),
		retentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_store_retention_deleted_segments_total",
			Help: "Segments deleted by retention, by log."}, []string{"log"}),
		retentionKept: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_store_retention_kept_unacked_segments",
			Help: "Expired message-log segments kept because live consumer groups have not acked them (messagelog.retention.keep.unacked)."}),
		retentionForced: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_store_retention_disk_ceiling_deletes_total",
			Help: "Times disk.max.used.ratio forced deletion of segments that still held unacked messages."}),
		diskFree: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_store_disk_free_bytes",
			Help: "Free space of the file system holding store.root, as last measured (disk.check.interval.ms)."}),
		diskFull: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_store_disk_full",
			Help: "1 while the store refuses new messages for lack of disk space (below disk.free.min.bytes, or a segment could not be allocated)."}),
	}
	if reg != nil {
		reg.MustRegister(m.recoverySeconds, m.replayLag, m.dispatchErrors, m.checkpoints, m.retentionDeleted, m.retentionKept, m.retentionForced,
			m.diskFree, m.diskFull)
	}
	return m
}
