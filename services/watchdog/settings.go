package watchdog

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Config file names in the conf directory (QMQ's names).
const (
	FileWatchdog   = "watchdog.properties"
	FileDatasource = "datasource.properties"
)

// Settings are a watchdog's whole configuration, typed: New takes them and
// reads no file. Start from DefaultSettings; LoadSettings maps QMQ's
// watchdog.properties and datasource.properties keys (named beside each
// field) onto them.
type Settings struct {
	AppCode      string // appCode (required, as in QMQ): the producer's appCode
	Namespace    string // namespace: the room whose datasource_config rows this watchdog serves, and the election's name
	MetaEndpoint string // meta.server.endpoint (required): where the producer finds brokers

	// CheckInterval is checkInterval: how often the leader scans every
	// client database, and how long a row must have been left untouched
	// (update_time) before it is resent, so that an application still
	// sending its own rows is not raced.
	CheckInterval time.Duration
	// RefreshInterval is refreshInterval: how often the leader re-reads
	// datasource_config.
	RefreshInterval time.Duration
	// TaskTimeout is sendMessageTaskExecuteTimeout: the time box of one
	// database's scan; what is left waits for the next round.
	TaskTimeout time.Duration

	BatchSize   int           // watchdog.batch.size (ours; QMQ: 50): rows read and sent per query
	RatePerDB   float64       // watchdog.resend.rate (ours; QMQ: 50/s): rows sent per second per database
	MaxErrors   int           // watchdog.max.errors (ours; QMQ: 1000): a row failed this often is marked -2
	Parallel    int           // watchdog.parallel.dbs (ours): databases scanned at once
	Table       string        // watchdog.table (ours): the table of a MySQL row whose url names no database
	SendTimeout time.Duration // watchdog.send.timeout.ms (ours): the producer's timeout of one send

	// Election on the leader_election table (ours; QMQ's fixed timings):
	// a leader renews its lease every ElectInterval; another watchdog
	// takes over once the lease has not been renewed for Lease. Not used
	// when the Consul lock is (ConsulElection).
	ElectInterval time.Duration // leader.elect.interval.ms (1000)
	Lease         time.Duration // leader.lease.ms (5000)

	// Election through a Consul lock (ours, election_consul.go): used
	// instead of the table when ConsulAddress is set and ConsulElection is
	// true.
	ConsulElection   bool          // election.consul.enable (default true)
	ConsulKeyPrefix  string        // election.consul.key.prefix: the lock is <prefix><namespace>/leader (default qmq/watchdog/)
	ConsulSessionTTL time.Duration // election.consul.session.ttl.ms: the session's TTL (Consul's minimum, 10 s)
	// ConsulLockDelay is election.consul.lock.delay.ms: nobody takes the
	// key this long after the session ends, whatever ended it; the leader
	// stops sending at 90% of it after its last renewal (2 s).
	ConsulLockDelay time.Duration
	// ConsulCheckTTL is election.consul.check.ttl.ms: the session also
	// depends on a TTL health check the leader passes every third of it, so
	// a killed leader's lock is free this long (plus the lock-delay) after
	// its last pass, instead of 10 to 20 s; 0 = the session TTL only (3 s).
	ConsulCheckTTL time.Duration

	HTTPPort int    // watchdog.http.port (ours): /health and /metrics; -1 = off, 0 = a free port
	BindHost string // watchdog.bind.host (ours): "" = all interfaces

	// The metaserver's database, as the metaserver reads it: jdbc.url,
	// jdbc.username, jdbc.password of datasource.properties, or with no
	// jdbc.url the embedded SQLite file metaserver.db under store.root.
	JDBCURL      string
	JDBCUser     string
	JDBCPassword string
	StoreRoot    string // store.root (the metaserver's key): directory of metaserver.db

	// Consul registration (ours): service qmq-watchdog with an HTTP check on /health.
	ConsulAddress         string        // consul.address; "" = CONSUL_HTTP_ADDR; both empty = no registration
	ConsulToken           string        // consul.token; "" = CONSUL_HTTP_TOKEN
	ConsulService         string        // consul.service.name, default qmq-watchdog
	ConsulDeregisterAfter time.Duration // consul.deregister.critical.after.ms
}

// DefaultSettings are the built-in defaults (QMQ's where QMQ has the key).
// AppCode and MetaEndpoint have none.
func DefaultSettings() Settings {
	return Settings{
		Namespace:             "default",
		CheckInterval:         60 * time.Second,
		RefreshInterval:       3 * time.Minute,
		TaskTimeout:           3 * time.Minute,
		BatchSize:             50,
		RatePerDB:             500,
		MaxErrors:             1000,
		Parallel:              16,
		Table:                 "qmq_produce.qmq_msg_queue",
		SendTimeout:           5 * time.Second,
		ElectInterval:         time.Second,
		Lease:                 5 * time.Second,
		HTTPPort:              8083,
		StoreRoot:             "./data",
		ConsulService:         "qmq-watchdog",
		ConsulDeregisterAfter: consul.DefaultDeregisterCriticalAfter,
		ConsulElection:        true,
		ConsulKeyPrefix:       "qmq/watchdog/",
		ConsulSessionTTL:      consul.MinSessionTTL,
		ConsulLockDelay:       2 * time.Second,
		ConsulCheckTTL:        3 * time.Second,
	}
}

// consulLockTTL is the TTL the Consul lock counts with (consul.Lock.TTL):
// the check's, or else the session's.
func (s Settings) consulLockTTL() time.Duration {
	session := max(s.ConsulSessionTTL, consul.MinSessionTTL)
	if s.ConsulCheckTTL > 0 {
		return min(s.ConsulCheckTTL, session)
	}
	return session
}

// Validate checks what a watchdog cannot run with. Each error names the
// key, the values and what to change.
func (s Settings) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.AppCode == "" {
		fail("appCode is required (as in QMQ's watchdog.properties): the application name the watchdog's producer registers with, e.g. appCode=qmq-watchdog")
	}
	if s.MetaEndpoint == "" {
		fail("meta.server.endpoint is required: the metaserver's discovery URL, e.g. meta.server.endpoint=http://<metaserver>:8080/meta/address")
	}
	if s.Namespace == "" || len(s.Namespace) > 20 {
		fail("namespace=%q: name the room of the datasource_config rows to serve (1 to 20 characters, QMQ's default is \"default\")", s.Namespace)
	}
	if s.CheckInterval <= 0 || s.RefreshInterval <= 0 || s.TaskTimeout <= 0 {
		fail("checkInterval=%d, refreshInterval=%d, sendMessageTaskExecuteTimeout=%d: all must be positive milliseconds",
			s.CheckInterval.Milliseconds(), s.RefreshInterval.Milliseconds(), s.TaskTimeout.Milliseconds())
	}
	if s.BatchSize < 1 || s.RatePerDB <= 0 || s.MaxErrors < 1 || s.Parallel < 1 || s.SendTimeout <= 0 {
		fail("watchdog.batch.size=%d, watchdog.resend.rate=%g, watchdog.max.errors=%d, watchdog.parallel.dbs=%d, watchdog.send.timeout.ms=%d: all must be positive",
			s.BatchSize, s.RatePerDB, s.MaxErrors, s.Parallel, s.SendTimeout.Milliseconds())
	}
	if !tableName.MatchString(s.Table) {
		fail("watchdog.table=%q is not a table name (letters, digits, _ and $, optionally database.table)", s.Table)
	}
	// The leader stops sending a safety margin before its lease could be
	// taken, so the lease must leave room for a few renewals.
	if s.ElectInterval <= 0 || s.Lease < 3*s.ElectInterval {
		fail("leader.elect.interval.ms=%d, leader.lease.ms=%d: the lease must be at least three renewal intervals, so that one slow renewal does not hand the lead over",
			s.ElectInterval.Milliseconds(), s.Lease.Milliseconds())
	}
	if h := s.ConsulCheckTTL; s.useConsulElection() && h > 0 && h < time.Second {
		fail("election.consul.check.ttl.ms=%d is below 1000: the leader passes the check every third of it and a missed pass ends its lead, so a short TTL makes the lead flap; use 1000 or more (default 3000), or 0 for the session TTL only",
			h.Milliseconds())
	}
	if ttl := s.consulLockTTL(); s.useConsulElection() && consulLeadUse(ttl, s.ConsulLockDelay) <= ttl/3 {
		fail("election.consul.lock.delay.ms=%d is too short for renewals every %d ms: a session can end at any moment (its agent stopped), so a leader stops sending at 90%% of the lock-delay after its last renewal; use at least %d (two renewal intervals)",
			s.ConsulLockDelay.Milliseconds(), (ttl / 3).Milliseconds(), (2 * ttl / 3).Milliseconds())
	}
	if s.useConsulElection() && s.ConsulKeyPrefix == "" {
		fail("election.consul.key.prefix is empty: name the KV folder of the watchdogs' locks, e.g. qmq/watchdog/ (the lock is <prefix><namespace>/leader)")
	}
	if s.HTTPPort < -1 || s.HTTPPort > 65535 {
		fail("watchdog.http.port=%d is not a port: use 0 to 65535, or -1 to turn /health and /metrics off", s.HTTPPort)
	}
	if s.JDBCURL == "" {
		if s.StoreRoot == "" {
			fail("no jdbc.url in %s and store.root is empty: name the metaserver's database (jdbc.url, as the metaserver's) or the directory of its embedded metaserver.db (store.root)", FileDatasource)
		}
	} else if _, _, err := store.DSNFromJDBC(s.JDBCURL, s.JDBCUser, s.JDBCPassword); err != nil {
		fail("jdbc.url in %s: %v", FileDatasource, err)
	}
	return errors.Join(errs...)
}
