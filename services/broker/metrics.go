package broker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the broker's Prometheus series, on a registry of its own (no
// global state: several brokers can run in one test process). The store
// registers its own series on the same registry.
type metrics struct {
	reg         *prometheus.Registry
	received    prometheus.Counter
	rejected    *prometheus.CounterVec
	pulled      prometheus.Counter
	redelivered prometheus.Counter
	filtered    prometheus.Counter
	acked       prometheus.Counter
	pullLatency prometheus.Histogram
	movedRetry  prometheus.Counter
	movedDead   prometheus.Counter
	badFrames   prometheus.Counter

	routeQueries       prometheus.Counter
	routeQueryFailures prometheus.Counter
	foreverOffline     prometheus.Counter
	slaveUnconfirmed   prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_received_messages_total", Help: "Messages stored from SEND_MESSAGE requests.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qmq_broker_rejected_messages_total", Help: "Messages refused, by SEND_MESSAGE result code.",
		}, []string{"code"}),
		pulled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_pulled_messages_total", Help: "Messages handed to consumers (redeliveries included).",
		}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_redelivered_messages_total", Help: "Messages sent again because a consumer lost a pull response.",
		}),
		filtered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_filtered_messages_total", Help: "Messages skipped by a consumer's tag filter.",
		}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_acked_messages_total", Help: "Pull-log entries acknowledged (as requested by range acks).",
		}),
		pullLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "qmq_broker_pull_seconds", Help: "Time to answer PULL_MESSAGE requests that returned messages (long-poll waits included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		movedRetry: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_moved_to_retry_total", Help: "Unacked messages of offline consumers (or skipped by acks) re-appended to retry subjects.",
		}),
		movedDead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_moved_to_dead_letter_total", Help: "Unacked messages of offline consumers (or skipped by acks) that had used up their retries, appended to %DEAD_RETRY% subjects.",
		}),
		routeQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_route_queries_total", Help: "QUERY_SUBJECT_ROUTE requests sent to the metaserver to check that subjects are routed to this broker.",
		}),
		routeQueryFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_route_query_failures_total", Help: "Subject route checks the metaserver could not answer (messages were accepted: fail open).",
		}),
		foreverOffline: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_forever_offline_consumers_total", Help: "Consumers dropped for good after subscriber.forever.offline.timeout.ms of silence (FOREVER_OFFLINE actions written).",
		}),
		slaveUnconfirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_slave_unconfirmed_messages_total", Help: "Messages stored but answered BROKER_BUSY because the slave did not confirm them within wait.slave.wrote.timeout.ms.",
		}),
		badFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_broker_bad_frames_total", Help: "Malformed frames received (each closed its connection).",
		}),
	}
	reg.MustRegister(m.received, m.rejected, m.pulled, m.redelivered, m.filtered, m.acked, m.pullLatency, m.movedRetry, m.movedDead, m.badFrames,
		m.routeQueries, m.routeQueryFailures, m.foreverOffline, m.slaveUnconfirmed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
