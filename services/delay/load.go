package delay

import (
	"fmt"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// LoadSettings reads delay.properties in dir (QMQ's keys and ours) with
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
		return Settings{}, conf.KeyReport{}, fmt.Errorf("invalid configuration for the delay server:\n%w", err)
	}
	return s, report, nil
}

// ignoredKeys are keys of QMQ's delay.properties that this delay server
// accepts without effect, with why.
var ignoredKeys = map[string]string{
	"dispatch.sync.timeout.ms":                   "message.sync.timeout.ms parks the requests of both logs",
	"load.blocking.exit.sec":                     "the delay store loads schedule buckets itself (load.in.advance.min says how far ahead)",
	"load.segment.delay.min":                     "the delay store loads schedule buckets itself (load.in.advance.min says how far ahead)",
	"log.retention.check.interval.seconds":       "the delay store paces its own clean-up",
	"delay.send.batch.thread.size":               "one dispatcher sends due messages in batches of delay.send.batch.size",
	"delay.send.wait.time":                       "the dispatcher waits on the store, not on a timer",
	"delay.send.threads":                         "one dispatcher sends due messages in batches of delay.send.batch.size",
	"delay.send.batch.executor.sleep.min.millis": "failed sends back off between delay.send.retry.min.ms and delay.send.retry.max.ms",
	"add.wheel.exception.sleep.millis":           "the delay store's wheel does not fail on add",
	"Receiver.RejectIllegalSubject":              "subjects are always checked; an illegal one is refused BLOCK",
}

func readSettings(dir string, l conf.Lookup) (Settings, *conf.Reader, error) {
	f, err := conf.LoadFile(dir, FileDelay)
	if err != nil {
		return Settings{}, nil, err
	}
	r := conf.NewReader(f, l)
	d := DefaultSettings()
	s := Settings{
		MetaEndpoint:      r.String("meta.server.endpoint", d.MetaEndpoint),
		Port:              r.Int("broker.port", d.Port, 0, 65535),
		SyncPort:          r.Int("sync.port", d.SyncPort, 0, 65535),
		HTTPPort:          r.Int("delay.http.port", d.HTTPPort, -1, 65535),
		BindHost:          r.String("delay.bind.host", d.BindHost),
		AdvertiseIP:       r.String("delay.advertise.ip", d.AdvertiseIP),
		MaxMessageSize:    r.Int("per.message.size", d.MaxMessageSize, 1<<10, 64<<20),
		MaxFrameSize:      r.Int("max.frame.size", d.MaxFrameSize, 1<<16, 64<<20),
		WaitSlaveWrote:    r.Bool("wait.slave.wrote", d.WaitSlaveWrote),
		SlaveWroteTimeout: r.Millis("wait.slave.wrote.timeout.ms", d.SlaveWroteTimeout, 10*time.Millisecond, 10*time.Minute),
		HeartbeatInterval: r.Millis("broker.heartbeat.interval.ms", d.HeartbeatInterval, 10*time.Millisecond, 10*time.Minute),
		MetaRetry:         r.Millis("meta.retry.interval.ms", d.MetaRetry, 10*time.Millisecond, 10*time.Minute),
		ConsulAddress:     r.HostPort("consul.address", l.Getenv("CONSUL_HTTP_ADDR")),
		ConsulToken:       r.String("consul.token", l.Getenv("CONSUL_HTTP_TOKEN")),
		ConsulService:     r.String("consul.service.name", d.ConsulService),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", d.ConsulDeregisterAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
	}
	dd := d.Dispatch
	s.Dispatch = DispatchSettings{
		BatchSize:    r.Int("delay.send.batch.size", dd.BatchSize, 1, 10_000),
		SendTimeout:  r.Millis("delay.send.timeout.ms", dd.SendTimeout, 100*time.Millisecond, 10*time.Minute),
		RetryMin:     r.Millis("delay.send.retry.min.ms", dd.RetryMin, 10*time.Millisecond, time.Minute),
		RetryMax:     r.Millis("delay.send.retry.max.ms", dd.RetryMax, 10*time.Millisecond, time.Hour),
		RouteRefresh: r.Millis("delay.route.refresh.ms", dd.RouteRefresh, 100*time.Millisecond, time.Hour),
		AppCode:      r.String("delay.app.code", dd.AppCode),
	}
	df := d.Failover
	s.Failover = FailoverSettings{
		Enable:        r.Bool("failover.enable", df.Enable),
		MasterTimeout: r.Millis("failover.master.timeout.ms", df.MasterTimeout, 100*time.Millisecond, 10*time.Minute),
		LeaseTTL:      r.Millis("failover.lease.ttl.ms", df.LeaseTTL, 300*time.Millisecond, 10*time.Minute),
		Consul: lease.ConsulSettings{
			Enable:     r.Bool("failover.consul.lease", df.Consul.Enable),
			SessionTTL: r.Millis("failover.consul.session.ttl.ms", df.Consul.SessionTTL, 10*time.Second, 24*time.Hour),
			LockDelay:  r.Millis("failover.consul.lock.delay.ms", df.Consul.LockDelay, 0, time.Minute),
			HealthTTL:  r.Millis("failover.consul.check.ttl.ms", df.Consul.HealthTTL, 0, time.Minute),
			KeyPrefix:  r.String("failover.consul.key.prefix", df.Consul.KeyPrefix),
		},
	}
	s.Store = readStore(r, d.Store, s.MaxMessageSize)
	s.Replication = readReplication(r, d.Replication)
	syncSecret := r.String("sync.secret", "")
	s.SyncSecretFile = r.String("sync.secret.file", "")
	s.Limits = netlimits.Read(r, s.MaxFrameSize)
	adminSecret, secretErr := delayadmin.LoadSecret(r.String("delay.admin.secret", ""), r.String("delay.admin.secret.file", ""))
	for k, note := range ignoredKeys {
		r.Ignore(k, note)
	}
	if err := r.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", f.Path, err)
	}
	if s.SyncSecret, err = syncauth.LoadSecret(syncSecret, s.SyncSecretFile); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if secretErr != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, secretErr)
	}
	s.AdminSecret = adminSecret
	if err := s.Validate(); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return s, r, nil
}

// readReplication reads the replication keys (QMQ's names, the broker's
// ranges) onto d.
func readReplication(r *conf.Reader, d replication.Settings) replication.Settings {
	return replication.Settings{
		BatchSize:          r.Int("sync.batch.size", d.BatchSize, 1024, 32<<20),
		MessageSyncTimeout: r.Millis("message.sync.timeout.ms", d.MessageSyncTimeout, time.Millisecond, time.Minute),
		SlaveSyncTimeout:   r.Millis("slave.sync.timeout", d.SlaveSyncTimeout, 100*time.Millisecond, 10*time.Minute),
		MaxConnections:     r.Int("sync.max.connections", d.MaxConnections, 1, 10000),
		IdleTimeout:        r.Millis("sync.idle.timeout.ms", d.IdleTimeout, 3*time.Second, 24*time.Hour),
	}
}

// readStore reads the delay store's keys (QMQ's names and defaults, plus
// ours) onto c.
func readStore(r *conf.Reader, c delaystore.Config, maxMessageSize int) delaystore.Config {
	c.Root = r.String("store.root", c.Root)
	scale := r.Int("segment.scale.minute", int(c.SegmentScale/time.Minute), 5, 60)
	c.SegmentScale = time.Duration(scale) * time.Minute
	// QMQ loads (scale+1)/2 minutes ahead unless told otherwise.
	c.LoadAhead = time.Duration(r.Int("load.in.advance.min", (scale+1)/2, 1, 24*60)) * time.Minute
	c.MessageSegmentSize = r.Int64("per.segment.file.size", c.MessageSegmentSize, 1<<20, 1<<31-1)
	c.MaxMessageSize = maxMessageSize
	c.FlushSync = r.Bool("flush.sync", c.FlushSync)
	c.FlushInterval = r.Millis("flush.interval.ms", c.FlushInterval, time.Millisecond, time.Minute)
	hours := func(key string, d time.Duration) time.Duration {
		return time.Duration(r.Int64(key, int64(d/time.Hour), 1, 100_000)) * time.Hour
	}
	c.DispatchLogKeep = hours("dispatch.log.keep.hour", c.DispatchLogKeep)
	c.ScheduleCleanAfter = hours("schedule.clean.before.dispatch.hour", c.ScheduleCleanAfter)
	c.MessageLogRetention = hours("messagelog.retention.hours", c.MessageLogRetention)
	c.DeleteExpired = r.Bool("log.expired.delete.enable", c.DeleteExpired)
	c.DiskFreeMin = r.Int64("disk.free.min.bytes", c.DiskFreeMin, 0, 1<<50)
	return c
}
