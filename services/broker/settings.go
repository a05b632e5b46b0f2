package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
)

// FileBroker is the broker's configuration file in the conf directory.
const FileBroker = "broker.properties"

// Settings are a broker's whole configuration, typed: New takes them and
// reads no file. Start from DefaultSettings; LoadSettings maps QMQ's
// broker.properties keys (named beside each field) onto them.
type Settings struct {
	MetaEndpoint string // meta.server.endpoint (required): http://host:8080/meta/address, consul://…, or host:port
	Port         int    // broker.port (0 = a free port, for tests)
	SyncPort     int    // sync.port: where a master serves its slave (services/replication)
	HTTPPort     int    // broker.http.port (ours): /health and /metrics; -1 = off, 0 = a free port
	BindHost     string // broker.bind.host (ours): "" = all interfaces
	AdvertiseIP  string // broker.advertise.ip (ours): the IP registered; "" = the IP that reaches the metaserver

	MaxMessageSize int           // max.message.size (ours), bytes including the CRC
	MaxFrameSize   int           // max.frame.size (ours)
	RetryDelay     time.Duration // message.retry.delay.seconds
	RetryLimit     int           // put_need_retry_message.limiter: messages per second moved to retry subjects

	OfflineTimeout    time.Duration // subscriber.offline.timeout.ms (ours; QMQ: 3 min)
	ForeverTimeout    time.Duration // subscriber.forever.offline.timeout.ms (ours; QMQ: 2 days)
	HeartbeatInterval time.Duration // broker.heartbeat.interval.ms (ours; QMQ: 10 s)
	MetaRetry         time.Duration // meta.retry.interval.ms (ours): between BROKER_ACQUIRE_META attempts

	// Subject route checks of SEND_MESSAGE (ours; see routes.go).
	RouteCheck       bool          // subject.route.check.enable
	RouteRefresh     time.Duration // subject.route.refresh.ms: re-check routed subjects; one warning per period while failing
	RouteNegativeTTL time.Duration // subject.route.negative.ttl.ms: how long a refusal is remembered
	RouteTimeout     time.Duration // subject.route.timeout.ms: the longest a send waits for the metaserver

	// Sub-environment isolation (QMQ's EnvPullMessageFilter; see subenv.go).
	SubEnvIsolation bool          // sub_env_isolation_filter.enable
	SubEnvRulesURL  string        // sub_env_isolation_filter.rules_url: http(s) URL (QMQ) or file path (ours)
	SubEnvReload    time.Duration // sub_env_isolation_filter.reload.seconds (ours; QMQ: 30 s)

	// Consul registration (ours): service qmq-broker with a TCP check on broker.port.
	ConsulAddress string // consul.address; "" = CONSUL_HTTP_ADDR; both empty = no registration
	ConsulToken   string // consul.token; "" = CONSUL_HTTP_TOKEN
	ConsulService string // consul.service.name, default qmq-broker
	// ConsulDeregisterAfter is consul.deregister.critical.after.ms: the agent
	// removes the registration (and the lease's qmq-lock check) once critical this long.
	ConsulDeregisterAfter time.Duration

	// Replication (QMQ's keys; see replica.go).
	WaitSlaveWrote       bool          // wait.slave.wrote: answer a send only once the slave has written it
	SlaveWroteTimeout    time.Duration // wait.slave.wrote.timeout.ms (ours): then answer BROKER_BUSY so producers move on
	ReceiveQueueSize     int           // receive.queue.size: messages waiting for the slave at once; beyond, BROKER_BUSY
	SlaveLagMax          time.Duration // slave.message.lag.time.max.seconds
	SlaveLagMarkReadonly bool          // slave.message.lag.mark_readonly: a lagging slave makes the group read-only
	Replication          replication.Settings
	// SyncSecret (sync.secret, or the file sync.secret.file) authenticates
	// the sync connections of the group (services/replication/syncauth).
	SyncSecret     syncauth.Secret
	SyncSecretFile string // sync.secret.file, for the warning when it is empty

	Failover FailoverSettings

	// Limits are max.connections, tcp.idle.timeout.ms, frame.read.timeout.ms,
	// frame.memory.budget.bytes and http.max.connections (ours).
	Limits netlimits.Settings

	Store storage.Config
}

// FailoverSettings are the automatic failover keys (ours; failover.go).
type FailoverSettings struct {
	Enable        bool          // failover.enable: a slave takes over when its master's lease expires
	MasterTimeout time.Duration // failover.master.timeout.ms: master silence before the slave asks to take over
	LeaseTTL      time.Duration // failover.lease.ttl.ms: the master lease; renewed every third of it

	// The Consul lease (lease_consul.go): used instead of the metaserver's
	// when consul.address is set and failover.consul.lease is true.
	ConsulLease      bool          // failover.consul.lease (default true)
	ConsulSessionTTL time.Duration // failover.consul.session.ttl.ms: the session's TTL (Consul's minimum is 10 s)
	ConsulLockDelay  time.Duration // failover.consul.lock.delay.ms: Consul's lock-delay after the session is invalidated
	// ConsulHealthTTL is failover.consul.check.ttl.ms (ours): the session also
	// depends on a TTL health check the master passes, so a dead master's lock
	// is free this long after its last pass instead of 10–20 s; 0 = session TTL only.
	ConsulHealthTTL time.Duration
	ConsulKeyPrefix string // failover.consul.key.prefix: the lock is <prefix><group>/master (default qmq/broker/)
}

// DefaultSettings are the built-in defaults (QMQ's where QMQ has the key):
// what LoadSettings starts from and what a key left out of
// broker.properties means. MetaEndpoint has no default.
func DefaultSettings() Settings {
	s := Settings{
		Port:              20881,
		SyncPort:          replication.DefaultSyncPort,
		HTTPPort:          8081,
		MaxMessageSize:    4 << 20,
		MaxFrameSize:      64 << 20,
		RetryDelay:        5 * time.Second,
		RetryLimit:        50,
		OfflineTimeout:    3 * time.Minute,
		ForeverTimeout:    48 * time.Hour,
		HeartbeatInterval: 10 * time.Second,
		MetaRetry:         5 * time.Second,

		RouteCheck:       true,
		RouteRefresh:     time.Minute,
		RouteNegativeTTL: time.Second,
		RouteTimeout:     time.Second,
		SubEnvReload:     30 * time.Second,

		ConsulService:         "qmq-broker",
		ConsulDeregisterAfter: consul.DefaultDeregisterCriticalAfter,

		SlaveWroteTimeout: 3 * time.Second,
		ReceiveQueueSize:  50000,
		SlaveLagMax:       5 * time.Second,
		Replication:       replication.DefaultSettings(),
		Failover: FailoverSettings{
			MasterTimeout:    2 * time.Second,
			LeaseTTL:         3 * time.Second,
			ConsulLease:      true,
			ConsulSessionTTL: 10 * time.Second,
			ConsulLockDelay:  time.Second,
			ConsulHealthTTL:  3 * time.Second,
			ConsulKeyPrefix:  "qmq/broker/",
		},
		Store: storage.DefaultConfig("/data"),
	}
	s.Limits = netlimits.DefaultSettings(s.MaxFrameSize)
	return s
}

// Validate checks what a broker cannot run with: missing values and
// settings that contradict each other. Each error names the key, the values
// and what to change. (Key ranges are the loader's: LoadSettings refuses a
// value out of range with the file and line.)
func (s Settings) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.MetaEndpoint == "" {
		fail("meta.server.endpoint is required: the metaserver's discovery URL, e.g. meta.server.endpoint=http://<metaserver>:8080/meta/address")
	}
	for _, p := range []struct {
		key      string
		port, lo int
	}{{"broker.port", s.Port, 0}, {"sync.port", s.SyncPort, 0}, {"broker.http.port", s.HTTPPort, -1}} {
		if p.port < p.lo || p.port > 65535 {
			fail("%s=%d is not a port: use %d to 65535", p.key, p.port, p.lo)
		}
	}
	if s.MaxMessageSize <= 0 || s.MaxFrameSize <= 0 || s.MaxMessageSize > s.MaxFrameSize {
		fail("max.message.size=%d and max.frame.size=%d: both must be positive and a message must fit in a frame", s.MaxMessageSize, s.MaxFrameSize)
	}
	errs = append(errs, s.Limits.Validate(s.MaxFrameSize)...)
	if s.Store.Root == "" {
		fail("store.root is empty: name the directory of the broker's logs")
	}
	if s.ForeverTimeout < s.OfflineTimeout {
		fail("subscriber.forever.offline.timeout.ms (%v) is shorter than subscriber.offline.timeout.ms (%v): a consumer is dropped for good only after it has been offline; raise it (QMQ: 2 days)",
			s.ForeverTimeout, s.OfflineTimeout)
	}
	if s.SubEnvIsolation && s.SubEnvRulesURL == "" {
		fail("sub_env_isolation_filter.enable=true needs sub_env_isolation_filter.rules_url: the http(s) URL (or file) of the JSON rules saying which sub-environment's messages each consumer group takes")
	}
	if s.Failover.Enable && !s.WaitSlaveWrote {
		fail("failover.enable=true needs wait.slave.wrote=true (a slave may take over only when it has every acknowledged message): set wait.slave.wrote=true on both brokers of the group, or failover.enable=false")
	}
	if h := s.Failover.ConsulHealthTTL; h > 0 && h < time.Second {
		fail("failover.consul.check.ttl.ms=%d is below 1000: the master passes the check every third of it and a missed pass frees its lock, so a short TTL makes the lease flap; use 1000 or more (default 3000), or 0 for the session TTL only",
			h.Milliseconds())
	}
	return errors.Join(errs...)
}
