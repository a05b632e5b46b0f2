package watchdog

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
)

// LoadSettings reads watchdog.properties and datasource.properties in dir
// (QMQ's keys and ours) with the overrides and environment of l, onto
// DefaultSettings, and validates the result. The report lists the files'
// keys that no setting reads, for the caller to log (KeyReport.Log); an
// unknown --set key is an error.
func LoadSettings(dir string, l conf.Lookup) (Settings, conf.KeyReport, error) {
	s, readers, err := readSettings(dir, l)
	if err != nil {
		return Settings{}, conf.KeyReport{}, err
	}
	report, err := conf.CheckKeys(l.Overrides, readers...)
	if err != nil {
		return Settings{}, conf.KeyReport{}, fmt.Errorf("invalid configuration for the watchdog:\n%w", err)
	}
	return s, report, nil
}

func readSettings(dir string, l conf.Lookup) (Settings, []*conf.Reader, error) {
	wf, err := conf.LoadFile(dir, FileWatchdog)
	if err != nil {
		return Settings{}, nil, err
	}
	df, err := conf.LoadFile(dir, FileDatasource)
	if err != nil {
		return Settings{}, nil, err
	}
	r := conf.NewReader(wf, l)
	dr := conf.NewReader(df, l)
	d := DefaultSettings()
	s := Settings{
		AppCode:         r.String("appCode", d.AppCode),
		Namespace:       r.String("namespace", d.Namespace),
		MetaEndpoint:    r.String("meta.server.endpoint", d.MetaEndpoint),
		CheckInterval:   r.Millis("checkInterval", d.CheckInterval, 100*time.Millisecond, 24*time.Hour),
		RefreshInterval: r.Millis("refreshInterval", d.RefreshInterval, 100*time.Millisecond, 24*time.Hour),
		TaskTimeout:     r.Millis("sendMessageTaskExecuteTimeout", d.TaskTimeout, 100*time.Millisecond, 24*time.Hour),
		BatchSize:       r.Int("watchdog.batch.size", d.BatchSize, 1, 10_000),
		RatePerDB:       r.Float("watchdog.resend.rate", d.RatePerDB, 0.1, 1e6),
		MaxErrors:       r.Int("watchdog.max.errors", d.MaxErrors, 1, 1<<31-1),
		Parallel:        r.Int("watchdog.parallel.dbs", d.Parallel, 1, 1024),
		Table:           r.String("watchdog.table", d.Table),
		SendTimeout:     r.Millis("watchdog.send.timeout.ms", d.SendTimeout, 10*time.Millisecond, 10*time.Minute),
		ElectInterval:   r.Millis("leader.elect.interval.ms", d.ElectInterval, 10*time.Millisecond, time.Minute),
		Lease:           r.Millis("leader.lease.ms", d.Lease, 30*time.Millisecond, 10*time.Minute),
		HTTPPort:        r.Int("watchdog.http.port", d.HTTPPort, -1, 65535),
		BindHost:        r.String("watchdog.bind.host", d.BindHost),
		StoreRoot:       r.String("store.root", d.StoreRoot),
		ConsulAddress:   r.HostPort("consul.address", l.Getenv("CONSUL_HTTP_ADDR")),
		ConsulToken:     r.String("consul.token", l.Getenv("CONSUL_HTTP_TOKEN")),
		ConsulService:   r.String("consul.service.name", d.ConsulService),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", d.ConsulDeregisterAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
		ConsulElection:   r.Bool("election.consul.enable", d.ConsulElection),
		ConsulKeyPrefix:  r.String("election.consul.key.prefix", d.ConsulKeyPrefix),
		ConsulSessionTTL: r.Millis("election.consul.session.ttl.ms", d.ConsulSessionTTL, consul.MinSessionTTL, 24*time.Hour),
		ConsulLockDelay:  r.Millis("election.consul.lock.delay.ms", d.ConsulLockDelay, 0, time.Minute),
		ConsulCheckTTL:   r.Millis("election.consul.check.ttl.ms", d.ConsulCheckTTL, 0, time.Minute),
		JDBCURL:          dr.String("jdbc.url", d.JDBCURL),
		JDBCUser:         dr.String("jdbc.username", d.JDBCUser),
		JDBCPassword:     dr.String("jdbc.password", d.JDBCPassword),
	}
	dr.Ignore("jdbc.driverClassName", "the MySQL driver is built in")
	dr.Ignore("pool.size.max", "the watchdog needs two connections to the metaserver's database at most")
	if err := errors.Join(r.Err(), dr.Err()); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return s, []*conf.Reader{r, dr}, nil
}
