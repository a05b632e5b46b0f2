package client

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/tracing"
)

// Defaults (QMQ's client defaults, except DefaultSenders).
const (
	DefaultSendTimeout = 5 * time.Second
	DefaultSendTries   = 10
	DefaultBatchSize   = 30
	DefaultQueueSize   = 10000
	// DefaultSenders is 8, not QMQ's 3 threads: each sender keeps one batch
	// request in flight, and on loopback or a LAN round trips, not CPU, bound
	// async throughput (qmq bench: 3 senders 128k msg/s, 8 senders 160k msg/s
	// in one run on 2 cores). Senders are goroutines, not threads. They send
	// in parallel only full batches (or after a millisecond): a partial
	// batch waits for the request in flight, see Producer.worker.
	DefaultSenders          = 8
	DefaultConsumerRetries  = 32
	DefaultPullBatch        = 50
	DefaultPullTimeout      = 2500 * time.Millisecond
	DefaultPullRequestSlack = 8 * time.Second // QMQ's pullRequestTimeout: network allowance on top of the long poll
	DefaultRouteRefresh     = 60 * time.Second
	DefaultHeartbeat        = 10 * time.Second
	DefaultAckFlush         = time.Second
	DefaultCloseWait        = 5 * time.Second
)

// TagMode says how a consumer's tags select messages (server side).
type TagMode int16

const (
	TagOr  TagMode = 1 // the message has at least one of the tags
	TagAnd TagMode = 2 // the message has all of the tags
)

type commonConfig struct {
	log          hclog.Logger
	appCode      string
	clientID     string
	maxRetries   int
	routeRefresh time.Duration
	sendTimeout  time.Duration
	reg          prometheus.Registerer // nil: no metrics
	ldc          string                // clientLDC sent in CLIENT_REGISTER
	env, subEnv  string                // sub-environment ("" env: none)
	tracer       tracing.Tracer        // off unless WithTracerProvider
}

type producerConfig struct {
	commonConfig
	batchSize int
	queueSize int
	senders   int
}

type consumerConfig struct {
	commonConfig
	broadcast   bool
	tagMode     TagMode
	tags        []string
	atMostOnce  bool
	concurrency int
	pullBatch   int
	pullTimeout time.Duration
	heartbeat   time.Duration
	ackFlush    time.Duration
	closeWait   time.Duration
	retryDelay  time.Duration // backoff after pull errors
}

// ProducerOption configures NewProducer.
type ProducerOption interface{ applyProducer(*producerConfig) }

// ConsumerOption configures NewConsumer.
type ConsumerOption interface{ applyConsumer(*consumerConfig) }

// Option configures producers and consumers alike.
type Option struct{ f func(*commonConfig) }

func (o Option) applyProducer(c *producerConfig) { o.f(&c.commonConfig) }
func (o Option) applyConsumer(c *consumerConfig) { o.f(&c.commonConfig) }

type producerOption func(*producerConfig)

func (f producerOption) applyProducer(c *producerConfig) { f(c) }

type consumerOption func(*consumerConfig)

func (f consumerOption) applyConsumer(c *consumerConfig) { f(c) }

// WithLogger sets the logger (default: discard).
func WithLogger(l hclog.Logger) Option {
	return Option{func(c *commonConfig) {
		if l != nil {
			c.log = l
		}
	}}
}

// WithAppCode sets the application code sent to the metaserver and, by a
// producer, in qmq_appCode.
func WithAppCode(app string) Option { return Option{func(c *commonConfig) { c.appCode = app }} }

// WithClientID sets the client id (default <hostname>@@<pid>.<random>).
// A consumer's pull log on the broker belongs to its client id: a consumer
// that restarts with the same id gets what it had pulled but not acked
// redelivered at once. Two live consumers of a group must not share one.
func WithClientID(id string) Option { return Option{func(c *commonConfig) { c.clientID = id }} }

// WithMaxRetries: for a producer, how many send attempts a message gets
// across broker groups (default 10); for a consumer, how many times a
// failed message is retried before it goes to the dead-letter subject
// (default 32; a message's qmq_maxRetryNum overrides it).
func WithMaxRetries(n int) Option {
	return Option{func(c *commonConfig) {
		if n >= 0 {
			c.maxRetries = n
		}
	}}
}

// WithSendTimeout bounds one SEND_MESSAGE request (default 5 s). A
// consumer uses it for messages it sends back for retry.
func WithSendTimeout(d time.Duration) Option {
	return Option{func(c *commonConfig) {
		if d > 0 {
			c.sendTimeout = d
		}
	}}
}

// WithRouteRefresh sets how often routes are re-fetched from the metaserver
// (default 60 s, as QMQ).
func WithRouteRefresh(d time.Duration) Option {
	return Option{func(c *commonConfig) {
		if d > 0 {
			c.routeRefresh = d
		}
	}}
}

// WithRegisterer registers the client's Prometheus metrics with reg (see
// the package documentation for the names). Without it no metrics are
// kept. Producers and consumers may share one registerer: series of the
// same name are shared, told apart by their labels.
func WithRegisterer(reg prometheus.Registerer) Option {
	return Option{func(c *commonConfig) { c.reg = reg }}
}

// WithLDC sets the logical data center (room) sent to the metaserver as
// clientLDC in CLIENT_REGISTER, as QMQ's ClientInfo.ldc. Empty: not sent.
func WithLDC(ldc string) Option { return Option{func(c *commonConfig) { c.ldc = ldc }} }

// WithEnv puts the client in sub-environment subEnv of environment env, as
// QMQ's EnvProvider (env(subject) = env, subEnv(env) = subEnv for every
// subject). A producer stamps qmq_env and qmq_subEnv on every message it
// creates with NewMessage. A consumer renames its group
// <group>_<env>_<subEnv> (for the metaserver, pulls, acks and its retry
// subject) and pulls its subject with a SUB_ENV_ISOLATION filter, so that
// a broker with sub_env_isolation_filter.enable delivers only the messages
// whose qmq_env/qmq_subEnv its rule for that group names. An empty env
// turns the feature off, as in QMQ.
func WithEnv(env, subEnv string) Option {
	return Option{func(c *commonConfig) { c.env, c.subEnv = env, subEnv }}
}

// WithTracerProvider records OpenTelemetry spans with tp (package tracing
// names them): a producer's send, and a consumer's pull, handle, ack, retry
// and dead letter of each message, joined to the producer's trace through
// the message's traceparent property. Without it (or with nil or otel's
// no-op provider) nothing is recorded and no property is read or written.
// Pass otel.GetTracerProvider() to use the application's global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return Option{func(c *commonConfig) { c.tracer = tracing.New(tp) }}
}

// WithBatchSize sets the most messages per SEND_MESSAGE request of the
// asynchronous sender (default 30).
func WithBatchSize(n int) ProducerOption {
	return producerOption(func(c *producerConfig) {
		if n > 0 {
			c.batchSize = n
		}
	})
}

// WithQueueSize sets the capacity of the asynchronous send queue (default
// 10000); SendAsync fails with ErrQueueFull beyond it.
func WithQueueSize(n int) ProducerOption {
	return producerOption(func(c *producerConfig) {
		if n > 0 {
			c.queueSize = n
		}
	})
}

// WithSenders sets the number of asynchronous sender goroutines (default
// DefaultSenders): how many batch requests may be in flight at once.
func WithSenders(n int) ProducerOption {
	return producerOption(func(c *producerConfig) {
		if n > 0 {
			c.senders = n
		}
	})
}

// WithBroadcast makes every consumer of the group receive every message
// (the broker keys progress by client id; failed messages are not retried).
func WithBroadcast() ConsumerOption {
	return consumerOption(func(c *consumerConfig) { c.broadcast = true })
}

// WithTags filters messages on the broker by tag: TagOr delivers messages
// with any of the tags, TagAnd messages with all of them. Messages filtered
// out are skipped (acknowledged) for this group.
func WithTags(mode TagMode, tags ...string) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		c.tagMode = mode
		c.tags = append([]string(nil), tags...)
	})
}

// WithConsumeAtMostOnce acknowledges messages as soon as they are received:
// a failure or crash loses the message, nothing is retried.
func WithConsumeAtMostOnce() ConsumerOption {
	return consumerOption(func(c *consumerConfig) { c.atMostOnce = true })
}

// WithConcurrency sets the number of handler goroutines of Run (default 1).
func WithConcurrency(n int) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if n > 0 {
			c.concurrency = n
		}
	})
}

// WithPullBatch sets the most messages per PULL_MESSAGE request (default 50).
func WithPullBatch(n int) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if n > 0 {
			c.pullBatch = n
		}
	})
}

// WithPullTimeout sets the broker's long-poll wait (default 2.5 s). Pull
// returns an empty result after this long without messages.
func WithPullTimeout(d time.Duration) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if d > 0 {
			c.pullTimeout = d
		}
	})
}

// WithAckFlushInterval sets how long a completed ack range that is neither
// the whole pulled window nor a full batch may wait before it is sent
// (default 1 s; QMQ waits for its 10 s heartbeat).
func WithAckFlushInterval(d time.Duration) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if d > 0 {
			c.ackFlush = d
		}
	})
}

// WithHeartbeat sets the interval of heartbeat acks (default 10 s).
func WithHeartbeat(d time.Duration) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if d > 0 {
			c.heartbeat = d
		}
	})
}

// WithCloseWait bounds how long Close and the end of Run wait for pending
// acks and retry sends (default 5 s).
func WithCloseWait(d time.Duration) ConsumerOption {
	return consumerOption(func(c *consumerConfig) {
		if d >= 0 {
			c.closeWait = d
		}
	})
}
