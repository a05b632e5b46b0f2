package broker

import (
	"fmt"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
)

// LoadSettings reads broker.properties in dir (QMQ's keys and ours) with
// overrides and the environment of l, onto DefaultSettings, and validates
// the result. The report lists the file's keys that no setting reads, for
// the caller to log (KeyReport.Log); an unknown --set key is an error.
func LoadSettings(dir string, l conf.Lookup) (Settings, conf.KeyReport, error) {
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
	"dispatch.sync.timeout.ms":                        "a delay-server key: it belongs in delay.properties (qmq delay)",
	"dispatch.log.keep.hour":                          "a delay-server key: it belongs in delay.properties (qmq delay)",
	"segment.scale.minute":                            "a delay-server key: it belongs in delay.properties (qmq delay)",
}

func readSettings(dir string, l conf.Lookup) (Settings, *conf.Reader, error) {
	f, err := conf.LoadFile(dir, FileBroker)
	if err != nil {
		return Settings{}, nil, err
	}
	r := conf.NewReader(f, l)
	d := DefaultSettings()
	s := Settings{
		MetaEndpoint:      r.String("meta.server.endpoint", d.MetaEndpoint),
		Port:              r.Int("broker.port", d.Port, 0, 65535),
		SyncPort:          r.Int("sync.port", d.SyncPort, 0, 65535),
		HTTPPort:          r.Int("broker.http.port", d.HTTPPort, -1, 65535),
		BindHost:          r.String("broker.bind.host", d.BindHost),
		AdvertiseIP:       r.String("broker.advertise.ip", d.AdvertiseIP),
		MaxMessageSize:    r.Int("max.message.size", d.MaxMessageSize, 1<<10, 64<<20),
		MaxFrameSize:      r.Int("max.frame.size", d.MaxFrameSize, 1<<16, 64<<20),
		RetryDelay:        r.Seconds("message.retry.delay.seconds", d.RetryDelay, 0, 24*time.Hour),
		RetryLimit:        r.Int("put_need_retry_message.limiter", d.RetryLimit, 1, 1_000_000),
		OfflineTimeout:    r.Millis("subscriber.offline.timeout.ms", d.OfflineTimeout, 100*time.Millisecond, 7*24*time.Hour),
		HeartbeatInterval: r.Millis("broker.heartbeat.interval.ms", d.HeartbeatInterval, 10*time.Millisecond, 10*time.Minute),
		MetaRetry:         r.Millis("meta.retry.interval.ms", d.MetaRetry, 10*time.Millisecond, 10*time.Minute),
		ForeverTimeout:    r.Millis("subscriber.forever.offline.timeout.ms", d.ForeverTimeout, 100*time.Millisecond, 365*24*time.Hour),
		RouteCheck:        r.Bool("subject.route.check.enable", d.RouteCheck),
		RouteRefresh:      r.Millis("subject.route.refresh.ms", d.RouteRefresh, 100*time.Millisecond, time.Hour),
		RouteNegativeTTL:  r.Millis("subject.route.negative.ttl.ms", d.RouteNegativeTTL, 0, 10*time.Minute),
		RouteTimeout:      r.Millis("subject.route.timeout.ms", d.RouteTimeout, 10*time.Millisecond, 30*time.Second),
		SubEnvIsolation:   r.Bool("sub_env_isolation_filter.enable", d.SubEnvIsolation),
		SubEnvRulesURL:    r.String("sub_env_isolation_filter.rules_url", d.SubEnvRulesURL),
		SubEnvReload:      r.Seconds("sub_env_isolation_filter.reload.seconds", d.SubEnvReload, time.Second, 24*time.Hour),
		ConsulAddress:     r.HostPort("consul.address", l.Getenv("CONSUL_HTTP_ADDR")),
		ConsulToken:       r.String("consul.token", l.Getenv("CONSUL_HTTP_TOKEN")),
		ConsulService:     r.String("consul.service.name", d.ConsulService),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", d.ConsulDeregisterAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
		WaitSlaveWrote:       r.Bool("wait.slave.wrote", d.WaitSlaveWrote),
		SlaveWroteTimeout:    r.Millis("wait.slave.wrote.timeout.ms", d.SlaveWroteTimeout, 10*time.Millisecond, 10*time.Minute),
		ReceiveQueueSize:     r.Int("receive.queue.size", d.ReceiveQueueSize, 1, 10_000_000),
		SlaveLagMax:          r.Seconds("slave.message.lag.time.max.seconds", d.SlaveLagMax, time.Second, 24*time.Hour),
		SlaveLagMarkReadonly: r.Bool("slave.message.lag.mark_readonly", d.SlaveLagMarkReadonly),
		Replication:          readReplication(r, d.Replication),
	}
	df := d.Failover
	s.Failover = FailoverSettings{
		Enable:        r.Bool("failover.enable", df.Enable),
		MasterTimeout: r.Millis("failover.master.timeout.ms", df.MasterTimeout, 100*time.Millisecond, 10*time.Minute),
		LeaseTTL:      r.Millis("failover.lease.ttl.ms", df.LeaseTTL, 300*time.Millisecond, 10*time.Minute),

		ConsulLease:      r.Bool("failover.consul.lease", df.ConsulLease),
		ConsulSessionTTL: r.Millis("failover.consul.session.ttl.ms", df.ConsulSessionTTL, 10*time.Second, 24*time.Hour),
		ConsulLockDelay:  r.Millis("failover.consul.lock.delay.ms", df.ConsulLockDelay, 0, time.Minute),
		ConsulHealthTTL:  r.Millis("failover.consul.check.ttl.ms", df.ConsulHealthTTL, 0, time.Minute),
		ConsulKeyPrefix:  r.String("failover.consul.key.prefix", df.ConsulKeyPrefix),
	}
	s.Store = readStore(r, d.Store)
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
	if err := s.Validate(); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return s, r, nil
}

// readReplication reads the replication keys (QMQ's names) onto d.
// sync.port and wait.slave.wrote are the broker's own settings.
func readReplication(r *conf.Reader, d replication.Settings) replication.Settings {
	return replication.Settings{
		BatchSize:          r.Int("sync.batch.size", d.BatchSize, 1024, 32<<20),
		MessageSyncTimeout: r.Millis("message.sync.timeout.ms", d.MessageSyncTimeout, time.Millisecond, time.Minute),
		SlaveSyncTimeout:   r.Millis("slave.sync.timeout", d.SlaveSyncTimeout, 100*time.Millisecond, 10*time.Minute),
		MaxConnections:     r.Int("sync.max.connections", d.MaxConnections, 1, 10000),
		IdleTimeout:        r.Millis("sync.idle.timeout.ms", d.IdleTimeout, 3*time.Second, 24*time.Hour),
	}
}

// readStore reads the storage keys (QMQ's names and defaults, plus ours) onto c.
func readStore(r *conf.Reader, c storage.Config) storage.Config {
	c.Root = r.String("store.root", c.Root)
	c.MessageSegmentSize = r.Int64("messagelog.segment.size", c.MessageSegmentSize, 1<<20, 1<<31-1) // record sizes are i32
	c.ActionSegmentSize = r.Int64("actionlog.segment.size", c.ActionSegmentSize, 1<<20, 4<<30)
	c.ConsumerLogSegmentUnit = r.Int64("consumerlog.segment.units", c.ConsumerLogSegmentUnit, 1000, 100_000_000)
	c.MaxOpenConsumerLogs = r.Int("consumerlog.max.open", c.MaxOpenConsumerLogs, 0, 10_000_000)
	c.MessageResidentBytes = r.Int64("messagelog.resident.bytes", c.MessageResidentBytes, 0, 1<<40)
	c.FlushSync = r.Bool("flush.sync", c.FlushSync)
	c.FlushInterval = r.Millis("flush.interval.ms", c.FlushInterval, time.Millisecond, time.Minute)
	c.MessageCheckpointInterval = r.Int("message.checkpoint.interval", c.MessageCheckpointInterval, 1, 100_000_000)
	c.CheckpointRetain = r.Int("checkpoint.retain.count", c.CheckpointRetain, 1, 1000)
	c.CheckpointMinGap = r.Millis("checkpoint.min.interval.ms", c.CheckpointMinGap, 0, time.Hour)
	hours := func(key string, d time.Duration) time.Duration {
		return time.Duration(r.Int64(key, int64(d/time.Hour), 1, 100_000)) * time.Hour
	}
	c.MessageLogRetention = hours("messagelog.retention.hours", c.MessageLogRetention)
	c.ConsumerLogRetention = hours("consumerlog.retention.hours", c.ConsumerLogRetention)
	c.PullLogRetention = hours("pulllog.retention.hours", c.PullLogRetention)
	c.RetentionCheckInterval = r.Seconds("log.retention.check.interval.seconds", c.RetentionCheckInterval, time.Second, 24*time.Hour)
	c.DeleteExpired = r.Bool("log.expired.delete.enable", c.DeleteExpired)
	c.KeepUnacked = r.Bool("messagelog.retention.keep.unacked", c.KeepUnacked)
	c.DiskMaxUsedRatio = r.Float("disk.max.used.ratio", c.DiskMaxUsedRatio, 0.1, 0.99)
	c.DiskFreeMin = r.Int64("disk.free.min.bytes", c.DiskFreeMin, 0, 1<<50)
	c.DiskCheckInterval = r.Millis("disk.check.interval.ms", c.DiskCheckInterval, 10*time.Millisecond, time.Hour)
	return c
}
