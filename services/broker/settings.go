package broker

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
)

// FileBroker is the broker's configuration file in the conf directory.
const FileBroker = "broker.properties"

// Settings are read once at start-up.
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

// loadSettings reads broker.properties with overrides. The report lists the
// file's keys that no setting reads, for the caller to log; an unknown --set
// key is an error.
func loadSettings(dir string, l conf.Lookup) (Settings, conf.KeyReport, error) {
	s, r, err := readSettings(dir, l)
	if err != nil {
		return Settings{}, conf.KeyReport{}, err
	}
	report, err := conf.CheckKeys(l.Overrides, r)
	if err != nil {
		return Settings{}, conf.KeyReport{}, fmt.Errorf("invalid configuration for the broker:\n%w", err)
	}
	return s, report, nil
}

// ignoredKeys are keys of QMQ's broker.properties (and of its delay
// server's, often copied from it) that this broker accepts without effect.
var ignoredKeys = map[string]string{
	"action.checkpoint.interval":                      "QMQ reads it but does not use it either; message.checkpoint.interval and checkpoint.min.interval.ms pace checkpoints",
	"slave.server.http.port":                          "the slave's HTTP port for the backup server, which qmq-go has not yet; broker.http.port serves /health and /metrics",
	"smt.enable":                                      "QMQ's sorted message table is not implemented; the consumer logs serve pulls",
	"smt.retention.hours":                             "QMQ's sorted message table is not implemented",
	"consumerlog.v2.enable":                           "one consumer-log format only",
	"memtable.max_active":                             "QMQ's sorted message table is not implemented",
	"memtable.max_reserved":                           "QMQ's sorted message table is not implemented",
	"log_dispatcher.pause.millis":                     "the dispatcher is not a polling thread here",
	"query.max.threads":                               "the backup query API is not implemented",
	"Receiver.RejectIllegalSubject":                   "subjects are always checked (and routes, with subject.route.check.enable)",
	"PullMessageProcessor.AllowNonPositiveRequestNum": "a pull must ask for at least one message",
	"ConsumerStatusChecker.SkipCheckDuringOffline":    "subscriber.offline.timeout.ms governs silent consumers",
	"dispatch.sync.timeout.ms":                        "a delay-server key; the delay server is not implemented",
	"dispatch.log.keep.hour":                          "a delay-server key; the delay server is not implemented",
	"segment.scale.minute":                            "a delay-server key; the delay server is not implemented",
}

func readSettings(dir string, l conf.Lookup) (Settings, *conf.Reader, error) {
	f, err := conf.LoadFile(dir, FileBroker)
	if err != nil {
		return Settings{}, nil, err
	}
	r := conf.NewReader(f, l)
	s := Settings{
		MetaEndpoint:      r.String("meta.server.endpoint", ""),
		Port:              r.Int("broker.port", 20881, 0, 65535),
		SyncPort:          r.Int("sync.port", 20882, 0, 65535),
		HTTPPort:          r.Int("broker.http.port", 8081, -1, 65535),
		BindHost:          r.String("broker.bind.host", ""),
		AdvertiseIP:       r.String("broker.advertise.ip", ""),
		MaxMessageSize:    r.Int("max.message.size", 4<<20, 1<<10, 64<<20),
		MaxFrameSize:      r.Int("max.frame.size", 64<<20, 1<<16, 64<<20),
		RetryDelay:        r.Seconds("message.retry.delay.seconds", 5*time.Second, 0, 24*time.Hour),
		RetryLimit:        r.Int("put_need_retry_message.limiter", 50, 1, 1_000_000),
		OfflineTimeout:    r.Millis("subscriber.offline.timeout.ms", 3*time.Minute, 100*time.Millisecond, 7*24*time.Hour),
		HeartbeatInterval: r.Millis("broker.heartbeat.interval.ms", 10*time.Second, 10*time.Millisecond, 10*time.Minute),
		MetaRetry:         r.Millis("meta.retry.interval.ms", 5*time.Second, 10*time.Millisecond, 10*time.Minute),
		ForeverTimeout:    r.Millis("subscriber.forever.offline.timeout.ms", 48*time.Hour, 100*time.Millisecond, 365*24*time.Hour),
		RouteCheck:        r.Bool("subject.route.check.enable", true),
		RouteRefresh:      r.Millis("subject.route.refresh.ms", time.Minute, 100*time.Millisecond, time.Hour),
		RouteNegativeTTL:  r.Millis("subject.route.negative.ttl.ms", time.Second, 0, 10*time.Minute),
		RouteTimeout:      r.Millis("subject.route.timeout.ms", time.Second, 10*time.Millisecond, 30*time.Second),
		SubEnvIsolation:   r.Bool("sub_env_isolation_filter.enable", false),
		SubEnvRulesURL:    r.String("sub_env_isolation_filter.rules_url", ""),
		SubEnvReload:      r.Seconds("sub_env_isolation_filter.reload.seconds", 30*time.Second, time.Second, 24*time.Hour),
		ConsulAddress:     r.HostPort("consul.address", envOr(l, "CONSUL_HTTP_ADDR")),
		ConsulToken:       r.String("consul.token", envOr(l, "CONSUL_HTTP_TOKEN")),
		ConsulService:     r.String("consul.service.name", "qmq-broker"),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", consul.DefaultDeregisterCriticalAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
		WaitSlaveWrote:       r.Bool("wait.slave.wrote", false),
		SlaveWroteTimeout:    r.Millis("wait.slave.wrote.timeout.ms", 3*time.Second, 10*time.Millisecond, 10*time.Minute),
		ReceiveQueueSize:     r.Int("receive.queue.size", 50000, 1, 10_000_000),
		SlaveLagMax:          r.Seconds("slave.message.lag.time.max.seconds", 5*time.Second, time.Second, 24*time.Hour),
		SlaveLagMarkReadonly: r.Bool("slave.message.lag.mark_readonly", false),
		Replication:          replication.ReadSettings(r),
	}
	s.Failover = FailoverSettings{
		Enable:        r.Bool("failover.enable", false),
		MasterTimeout: r.Millis("failover.master.timeout.ms", 2*time.Second, 100*time.Millisecond, 10*time.Minute),
		LeaseTTL:      r.Millis("failover.lease.ttl.ms", 3*time.Second, 300*time.Millisecond, 10*time.Minute),

		ConsulLease:      r.Bool("failover.consul.lease", true),
		ConsulSessionTTL: r.Millis("failover.consul.session.ttl.ms", 10*time.Second, 10*time.Second, 24*time.Hour),
		ConsulLockDelay:  r.Millis("failover.consul.lock.delay.ms", time.Second, 0, time.Minute),
		ConsulHealthTTL:  r.Millis("failover.consul.check.ttl.ms", 3*time.Second, 0, time.Minute),
		ConsulKeyPrefix:  r.String("failover.consul.key.prefix", "qmq/broker/"),
	}
	s.Store = storage.ReadConfig(r)
	secret := r.String("sync.secret", "")
	s.SyncSecretFile = r.String("sync.secret.file", "")
	s.Limits = netlimits.Read(r, s.MaxFrameSize)
	for k, note := range ignoredKeys {
		r.Ignore(k, note)
	}
	if err := r.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", f.Path, err)
	}
	if s.SyncSecret, err = syncauth.LoadSecret(secret, s.SyncSecretFile); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if s.ForeverTimeout < s.OfflineTimeout {
		return Settings{}, nil, fmt.Errorf("%s: subscriber.forever.offline.timeout.ms (%v) is shorter than subscriber.offline.timeout.ms (%v): a consumer is dropped for good only after it has been offline; raise it (QMQ: 2 days)",
			f.Path, s.ForeverTimeout, s.OfflineTimeout)
	}
	if s.SubEnvIsolation && s.SubEnvRulesURL == "" {
		return Settings{}, nil, errors.New(f.Path + ": sub_env_isolation_filter.enable=true needs sub_env_isolation_filter.rules_url: the http(s) URL (or file) of the JSON rules saying which sub-environment's messages each consumer group takes")
	}
	if s.Failover.Enable && !s.WaitSlaveWrote {
		return Settings{}, nil, errors.New(f.Path + ": failover.enable=true needs wait.slave.wrote=true (a slave may take over only when it has every acknowledged message): set wait.slave.wrote=true on both brokers of the group, or failover.enable=false")
	}
	if h := s.Failover.ConsulHealthTTL; h > 0 && h < time.Second {
		return Settings{}, nil, fmt.Errorf("%s: failover.consul.check.ttl.ms=%d is below 1000: the master passes the check every third of it and a missed pass frees its lock, so a short TTL makes the lease flap; use 1000 or more (default 3000), or 0 for the session TTL only",
			f.Path, h.Milliseconds())
	}
	if s.MetaEndpoint == "" {
		return Settings{}, nil, errors.New(f.Path + ": meta.server.endpoint is required: the metaserver's discovery URL, e.g. meta.server.endpoint=http://<metaserver>:8080/meta/address")
	}
	return s, r, nil
}

// envOr reads an environment variable through the lookup's Env (tests
// pass none), "" when unset.
func envOr(l conf.Lookup, name string) string {
	env := l.Env
	if env == nil {
		env = os.LookupEnv
	}
	v, _ := env(name)
	return v
}
