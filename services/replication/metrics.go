package replication

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/metricsutil"
)

// masterMetrics are registered on MasterConfig.Registerer and unregistered
// by Close.
type masterMetrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	requests   *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	refused    *prometheus.CounterVec
}

func newMasterMetrics(reg prometheus.Registerer, m *Master) (*masterMetrics, error) {
	x := &masterMetrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_replication_sync_requests_total",
			Help: "Sync requests received from slaves, by type (message, action, heartbeat, checkpoint)."}, []string{"type"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_replication_sync_sent_bytes_total",
			Help: "Log bytes sent to slaves, by log."}, []string{"log"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_replication_sync_refused_total",
			Help: "Sync requests answered with an error, by reason (bad_frame, bad_request, behind_retention, slave_ahead, read_error; auth: a failed or missing SYNC_AUTH, not_registered: not the group's registered slave, replaced: a session the slave's newer connection replaced)."}, []string{"reason"}),
	}
	lagBytes := func(kind Log) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_replication_slave_lag_bytes",
			Help:        "Bytes of the log the slave lacks, from its last sync request (-1: no slave has reported).",
			ConstLabels: prometheus.Labels{"log": m.logs.Labels[kind]}}, func() float64 {
			l := m.Lag()
			if kind == MessageLog {
				return float64(l.MessageBytes)
			}
			return float64(l.ActionBytes)
		})
	}
	x.collectors = []prometheus.Collector{x.requests, x.bytes, x.refused, lagBytes(MessageLog), lagBytes(SecondLog),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_replication_slave_lag_seconds",
			Help: "Age of the oldest message the slave lacks: 0 when it has everything (-1: no slave has reported)."},
			func() float64 {
				if d := m.Lag().MessageDelay; d >= 0 {
					return d.Seconds()
				}
				return -1
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_replication_slave_last_request_age_seconds",
			Help: "Seconds since the last sync request of the slave (-1: none since the master started)."},
			func() float64 {
				if ns := m.lastRequest.Load(); ns != 0 {
					return time.Since(time.Unix(0, ns)).Seconds()
				}
				return -1
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_replication_wait_slave_wrote_waiting",
			Help: "Callers of WaitSlaveWrote waiting for the slave."},
			func() float64 { return float64(m.waiters.waiting.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "qmq_replication_sync_connections_refused_total",
			Help: "Connections to sync.port closed at once because sync.max.connections were open."},
			func() float64 { return float64(m.srv.Stats().Refused) }),
	}
	if err := metricsutil.RegisterAll(reg, x.collectors...); err != nil {
		return nil, fmt.Errorf("replication master: register metrics: %w", err)
	}
	return x, nil
}

func (x *masterMetrics) unregister() { metricsutil.UnregisterAll(x.reg, x.collectors...) }

// slaveMetrics are registered by Run and unregistered when it returns.
type slaveMetrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	connected  prometheus.Gauge
	errors     prometheus.Counter
	bytes      [2]prometheus.Counter // by Log
}

func newSlaveMetrics(reg prometheus.Registerer, s *Slave) (*slaveMetrics, error) {
	copied := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qmq_replication_slave_copied_bytes_total",
		Help: "Log bytes copied from the master, by log."}, []string{"log"})
	x := &slaveMetrics{
		reg: reg,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "qmq_replication_slave_connected",
			Help: "1 while the slave is connected to its master."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_replication_slave_errors_total",
			Help: "Failed connection attempts and requests (each is retried)."}),
		bytes: [2]prometheus.Counter{copied.WithLabelValues(s.logs.Labels[MessageLog]), copied.WithLabelValues(s.logs.Labels[SecondLog])},
	}
	behind := func(kind Log, master *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_replication_slave_behind_bytes",
			Help:        "The master's log end (as of the last heartbeat) minus this slave's (-1: unknown).",
			ConstLabels: prometheus.Labels{"log": s.logs.Labels[kind]}}, func() float64 {
			m := master.Load()
			if m < 0 {
				return -1
			}
			return float64(max(m-s.store.LogEnd(kind), 0))
		})
	}
	x.collectors = []prometheus.Collector{x.connected, x.errors, copied,
		behind(MessageLog, &s.masterMessageEnd), behind(SecondLog, &s.masterActionEnd)}
	if err := metricsutil.RegisterAll(reg, x.collectors...); err != nil {
		return nil, fmt.Errorf("replication slave: register metrics: %w", err)
	}
	return x, nil
}

func (x *slaveMetrics) unregister() { metricsutil.UnregisterAll(x.reg, x.collectors...) }
