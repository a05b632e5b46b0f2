package delay

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// FileDelay is the delay server's configuration file in the conf directory
// (QMQ's name).
const FileDelay = "delay.properties"

// Settings are a delay server's whole configuration, typed: New takes them
// and reads no file. Start from DefaultSettings; LoadSettings maps QMQ's
// delay.properties keys (named beside each field) onto them.
type Settings struct {
	MetaEndpoint string // meta.server.endpoint (required): http://host:8080/meta/address, consul://…, or host:port
	Port         int    // broker.port (QMQ's delay default 20801; 0 = a free port, for tests)
	SyncPort     int    // sync.port (20802): a DELAY_MASTER serves its slave's replication there
	HTTPPort     int    // delay.http.port (ours): /health and /metrics; -1 = off, 0 = a free port
	BindHost     string // delay.bind.host (ours): "" = all interfaces
	AdvertiseIP  string // delay.advertise.ip (ours): the IP registered; "" = the IP that reaches the metaserver

	MaxMessageSize int // per.message.size: bytes including the CRC
	MaxFrameSize   int // max.frame.size (ours)

	// WaitSlaveWrote is wait.slave.wrote: a send is answered only once the
	// group's DELAY_SLAVE has written it, BROKER_BUSY after
	// SlaveWroteTimeout (the messages are stored here but not confirmed).
	WaitSlaveWrote    bool
	SlaveWroteTimeout time.Duration // wait.slave.wrote.timeout.ms (ours)

	// SyncSecret (sync.secret, or the file sync.secret.file) authenticates
	// the group's master and slave to each other (services/replication/syncauth).
	SyncSecret     syncauth.Secret
	SyncSecretFile string
	// Replication: sync.batch.size, message.sync.timeout.ms,
	// slave.sync.timeout (QMQ's), sync.max.connections and
	// sync.idle.timeout.ms (ours), as for a broker.
	Replication replication.Settings

	HeartbeatInterval time.Duration // broker.heartbeat.interval.ms (ours; QMQ: 10 s)
	MetaRetry         time.Duration // meta.retry.interval.ms (ours): between BROKER_ACQUIRE_META attempts

	Dispatch DispatchSettings

	// Failover is automatic failover (ours, lease.go): the master's lease
	// at the metaserver and the slave's takeover.
	Failover FailoverSettings

	// Consul registration (ours): service qmq-delay with a TCP check on broker.port.
	ConsulAddress         string        // consul.address; "" = CONSUL_HTTP_ADDR; both empty = no registration
	ConsulToken           string        // consul.token; "" = CONSUL_HTTP_TOKEN
	ConsulService         string        // consul.service.name, default qmq-delay
	ConsulDeregisterAfter time.Duration // consul.deregister.critical.after.ms

	// AdminSecret is delay.admin.secret or delay.admin.secret.file (ours):
	// what CANCEL_DELAY must be signed with (cancel.go); none refuses them all.
	AdminSecret delayadmin.Secret

	// Limits are max.connections, tcp.idle.timeout.ms, frame.read.timeout.ms,
	// frame.memory.budget.bytes and http.max.connections (ours).
	Limits netlimits.Settings

	// Store is the delay store's configuration (storage/delaystore):
	// store.root, segment.scale.minute, the retention keys.
	Store delaystore.Config
}

// FailoverSettings are the automatic failover keys (ours), as the broker's.
type FailoverSettings struct {
	Enable        bool          // failover.enable: a slave takes over when its master's lease expires
	MasterTimeout time.Duration // failover.master.timeout.ms: master silence before the slave asks to take over
	LeaseTTL      time.Duration // failover.lease.ttl.ms: the metaserver's master lease; renewed every third of it
	// Consul is the Consul lease (services/lease), used instead of the
	// metaserver's when consul.address is set and failover.consul.lease is
	// true: failover.consul.session.ttl.ms, failover.consul.lock.delay.ms,
	// failover.consul.check.ttl.ms and failover.consul.key.prefix (default
	// qmq/delay/: the lock is qmq/delay/<group>/master), as a broker's.
	Consul lease.ConsulSettings
}

// DispatchSettings pace the sending of due messages to the real-time
// brokers (dispatch.go).
type DispatchSettings struct {
	BatchSize    int           // delay.send.batch.size (ours; QMQ sends batches of 30)
	SendTimeout  time.Duration // delay.send.timeout.ms (ours; QMQ: 5 s)
	RetryMin     time.Duration // delay.send.retry.min.ms (ours): first wait after a failed send
	RetryMax     time.Duration // delay.send.retry.max.ms (ours): longest wait between tries
	RouteRefresh time.Duration // delay.route.refresh.ms (ours): how often known routes are asked again (QMQ clients: 60 s)
	AppCode      string        // delay.app.code (ours): the appCode of the producer registration
}

// DefaultSettings are the built-in defaults (QMQ's where QMQ has the key).
// MetaEndpoint has no default.
func DefaultSettings() Settings {
	st := delaystore.DefaultConfig("/data")
	st.MaxMessageSize = 4 << 20
	s := Settings{
		Port:              20801,
		SyncPort:          20802,
		HTTPPort:          8082,
		MaxMessageSize:    4 << 20,
		MaxFrameSize:      64 << 20,
		HeartbeatInterval: 10 * time.Second,
		MetaRetry:         5 * time.Second,
		SlaveWroteTimeout: 3 * time.Second,
		Replication:       replication.DefaultSettings(),
		Failover: FailoverSettings{MasterTimeout: 2 * time.Second, LeaseTTL: 3 * time.Second,
			Consul: lease.ConsulSettings{Enable: true, SessionTTL: 10 * time.Second, LockDelay: time.Second, HealthTTL: 3 * time.Second, KeyPrefix: "qmq/delay/"}},
		Dispatch: DispatchSettings{
			BatchSize:    30,
			SendTimeout:  5 * time.Second,
			RetryMin:     200 * time.Millisecond,
			RetryMax:     10 * time.Second,
			RouteRefresh: time.Minute,
			AppCode:      "qmq-delay",
		},
		ConsulService:         "qmq-delay",
		ConsulDeregisterAfter: consul.DefaultDeregisterCriticalAfter,
		Store:                 st,
	}
	s.Limits = netlimits.DefaultSettings(s.MaxFrameSize)
	return s
}

// Validate checks what a delay server cannot run with. Each error names the
// key, the values and what to change.
func (s Settings) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.MetaEndpoint == "" {
		fail("meta.server.endpoint is required: the metaserver's discovery URL, e.g. meta.server.endpoint=http://<metaserver>:8080/meta/address")
	}
	for _, p := range []struct {
		key      string
		port, lo int
	}{{"broker.port", s.Port, 0}, {"sync.port", s.SyncPort, 0}, {"delay.http.port", s.HTTPPort, -1}} {
		if p.port < p.lo || p.port > 65535 {
			fail("%s=%d is not a port: use %d to 65535", p.key, p.port, p.lo)
		}
	}
	if s.MaxMessageSize <= 0 || s.MaxFrameSize <= 0 || s.MaxMessageSize > s.MaxFrameSize {
		fail("per.message.size=%d and max.frame.size=%d: both must be positive and a message must fit in a frame", s.MaxMessageSize, s.MaxFrameSize)
	}
	errs = append(errs, s.Limits.Validate(s.MaxFrameSize)...)
	if s.WaitSlaveWrote && s.SlaveWroteTimeout <= 0 {
		fail("wait.slave.wrote.timeout.ms=%d must be positive: it is how long a send waits for the slave", s.SlaveWroteTimeout.Milliseconds())
	}
	if f := s.Failover; f.Enable && !s.WaitSlaveWrote {
		fail("failover.enable=true needs wait.slave.wrote=true: the metaserver promotes a slave only if its master acknowledged nothing the slave lacks")
	}
	if h := s.Failover.Consul.HealthTTL; h > 0 && h < time.Second {
		fail("failover.consul.check.ttl.ms=%d is below 1000: the master passes the check every third of it and a missed pass frees its lock, so a short TTL makes the lease flap; use 1000 or more (default 3000), or 0 for the session TTL only",
			h.Milliseconds())
	}
	if s.Store.Root == "" {
		fail("store.root is empty: name the directory of the delay server's logs")
	}
	if sc := s.Store.SegmentScale; sc < 5*time.Minute || sc > time.Hour || sc%time.Minute != 0 {
		fail("segment.scale.minute=%v: use a whole number of minutes from 5 to 60 (QMQ's range), and never change it once the store holds messages", sc)
	}
	d := s.Dispatch
	if d.BatchSize < 1 {
		fail("delay.send.batch.size=%d: send at least one message per request", d.BatchSize)
	}
	if d.SendTimeout <= 0 || d.RetryMin <= 0 || d.RetryMax < d.RetryMin {
		fail("delay.send.timeout.ms=%d, delay.send.retry.min.ms=%d, delay.send.retry.max.ms=%d: all must be positive and the maximum at least the minimum",
			d.SendTimeout.Milliseconds(), d.RetryMin.Milliseconds(), d.RetryMax.Milliseconds())
	}
	if d.RouteRefresh <= 0 {
		fail("delay.route.refresh.ms=%d must be positive", d.RouteRefresh.Milliseconds())
	}
	return errors.Join(errs...)
}
