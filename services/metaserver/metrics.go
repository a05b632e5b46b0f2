package metaserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the metaserver's Prometheus series, on a registry of its own
// (no global state: several servers can run in one test process).
type metrics struct {
	reg             *prometheus.Registry
	brokerRegister  *prometheus.CounterVec // QMQ: brokerRegisterCount
	clientRegister  *prometheus.CounterVec // QMQ: clientRegisterCount
	acquireMeta     *prometheus.CounterVec
	management      *prometheus.CounterVec
	refreshFailures prometheus.Counter
	lastRefresh     prometheus.Gauge
	heartbeatExpiry prometheus.Counter
	badFrames       prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		brokerRegister: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_meta_broker_register_total", Help: "BROKER_REGISTER requests by request type (online, heartbeat, offline).",
		}, []string{"type"}),
		clientRegister: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_meta_client_register_total", Help: "CLIENT_REGISTER requests by client type.",
		}, []string{"client_type"}),
		acquireMeta: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_meta_broker_acquire_meta_total", Help: "BROKER_ACQUIRE_META requests by result (ok, unknown_broker).",
		}, []string{"result"}),
		management: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_meta_management_total", Help: "POST /management actions by action and status (0 ok, -1 error).",
		}, []string{"action", "status"}),
		refreshFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_meta_cache_refresh_failures_total", Help: "Cache refreshes that failed (database unreachable).",
		}),
		lastRefresh: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qmq_meta_cache_last_refresh_timestamp_seconds", Help: "When the cache was last refreshed from the database.",
		}),
		heartbeatExpiry: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_meta_broker_heartbeat_timeouts_total", Help: "Broker groups marked NRW because heartbeats stopped.",
		}),
		badFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_meta_bad_frames_total", Help: "Malformed frames received on the TCP port (the connection is closed).",
		}),
	}
	reg.MustRegister(m.brokerRegister, m.clientRegister, m.acquireMeta, m.management, m.refreshFailures,
		m.lastRefresh, m.heartbeatExpiry, m.badFrames,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
