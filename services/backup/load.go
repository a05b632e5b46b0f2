package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/services/replication/syncauth"
)

// LoadSettings reads backup.properties and hbase.properties in dir (QMQ's
// keys and ours) with the overrides and environment of l onto
// DefaultSettings, and validates the result. The report lists file keys
// no setting reads (KeyReport.Log); an unknown --set key is an error.
func LoadSettings(dir string, l conf.Lookup) (Settings, conf.KeyReport, error) {
	s, readers, err := readSettings(dir, l)
	if err != nil {
		return Settings{}, conf.KeyReport{}, err
	}
	report, err := conf.CheckKeys(l.Overrides, readers...)
	if err != nil {
		return Settings{}, conf.KeyReport{}, fmt.Errorf("invalid configuration for the backup:\n%w", err)
	}
	return s, report, nil
}

// ignoredKeys are QMQ's backup.properties keys that this backup accepts
// without effect, with why.
var ignoredKeys = map[string]string{
	"acquire.server.meta.url":         "the backup follows the slave's sync port, which the metaserver names; it fetches nothing over HTTP",
	"rocks.db.path":                   "pulls waiting for their acks are kept in the follower's checkpoint under store.root",
	"message.backup.batch.size":       "each answer of the slave (up to 1 MiB of log) is written in one batch",
	"record.backup.batch.size":        "each answer of the slave (up to 1 MiB of log) is written in one batch",
	"message.backup.max.retry.num":    "a failed write is retried until it succeeds (backup.store.retry.*.ms); nothing is dropped",
	"record.backup.max.retry.num":     "a failed write is retried until it succeeds (backup.store.retry.*.ms); nothing is dropped",
	"dead.message.backup.thread.size": "one writer per log",
	"dead.record.backup.thread.size":  "one writer per log",
	"max.query.threads":               "queries run on the HTTP server's goroutines, bounded by http.max.connections",
	"message.backup.hfile.size":       "no HFile bulk load",
	"enable.index.log.delete":         "the backup keeps no index log: it reads the slave's message log",
}

// ignoredHBaseKeys are QMQ's hbase.properties keys for the Java client.
var ignoredHBaseKeys = map[string]string{
	"hbase.zookeeper.quorum": "the backup reaches HBase through its REST gateway (backup.hbase.rest.url)",
	"zookeeper.znode.parent": "the backup reaches HBase through its REST gateway (backup.hbase.rest.url)",
}

func readSettings(dir string, l conf.Lookup) (Settings, []*conf.Reader, error) {
	f, err := conf.LoadFile(dir, FileBackup)
	if err != nil {
		return Settings{}, nil, err
	}
	hf, err := conf.LoadFile(dir, FileHBase)
	if err != nil {
		return Settings{}, nil, err
	}
	df, err := conf.LoadFile(dir, FileDatasource)
	if err != nil {
		return Settings{}, nil, err
	}
	r, hr, dr := conf.NewReader(f, l), conf.NewReader(hf, l), conf.NewReader(df, l)
	d := DefaultSettings()
	ms := func(key string, def, lo, hi time.Duration) time.Duration { return r.Millis(key, def, lo, hi) }
	s := Settings{
		MetaEndpoint:       r.String("meta.server.endpoint", d.MetaEndpoint),
		Port:               r.Int("broker.port", d.Port, 1, 65535),
		HTTPPort:           r.Int("backup.server.http.port", d.HTTPPort, 0, 65535),
		BindHost:           r.String("backup.bind.host", d.BindHost),
		StoreRoot:          r.String("store.root", d.StoreRoot),
		StoreType:          r.OneOf("store.type", d.StoreType, StorePebble, StoreHBase),
		PullMapTTL:         r.Seconds("rocks.db.ttl", d.PullMapTTL, time.Minute, 30*24*time.Hour),
		EnableRecord:       r.Bool("enable.record", d.EnableRecord),
		BackupContent:      r.Bool("backup.message.content", d.BackupContent),
		RetentionDays:      r.Int("backup.retention.days", d.RetentionDays, 0, 36500),
		CheckpointInterval: ms("sync.offset.flush.interval", d.CheckpointInterval, 10*time.Millisecond, time.Minute),
		RequestTimeout:     ms("slave.sync.timeout", d.RequestTimeout, 100*time.Millisecond, 10*time.Minute),
		RetryInterval:      ms("backup.sync.retry.ms", d.RetryInterval, 10*time.Millisecond, 10*time.Minute),
		StoreTimeout:       ms("backup.store.timeout.ms", d.StoreTimeout, 10*time.Millisecond, 10*time.Minute),
		StoreRetryMin:      ms("backup.store.retry.min.ms", d.StoreRetryMin, time.Millisecond, time.Minute),
		StoreRetryMax:      ms("backup.store.retry.max.ms", d.StoreRetryMax, time.Millisecond, time.Hour),
		MetaRefresh:        ms("backup.meta.refresh.ms", d.MetaRefresh, 10*time.Millisecond, 10*time.Minute),
		SkipReloadInterval: ms("backup.skip.reload.ms", d.SkipReloadInterval, 10*time.Millisecond, time.Hour),
		SkipFile:           filepath.Join(dir, FileSkip),
		ConsulAddress:      r.HostPort("consul.address", l.Getenv("CONSUL_HTTP_ADDR")),
		ConsulToken:        r.String("consul.token", l.Getenv("CONSUL_HTTP_TOKEN")),
		ConsulService:      r.String("consul.service.name", d.ConsulService),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", d.ConsulDeregisterAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
	}
	s.HBase = HBaseSettings{
		RESTURL:        hr.String("backup.hbase.rest.url", d.HBase.RESTURL),
		Timeout:        hr.Millis("backup.hbase.timeout.ms", d.HBase.Timeout, 10*time.Millisecond, 10*time.Minute),
		DictionaryPath: hr.String("backup.dic.sqlite.path", d.HBase.DictionaryPath),
		JDBCURL:        dr.String("jdbc.url", d.HBase.JDBCURL),
		JDBCUser:       dr.String("jdbc.username", d.HBase.JDBCUser),
		JDBCPassword:   dr.String("jdbc.password", d.HBase.JDBCPassword),
		// QMQ reads the table names from backup.properties.
		MessageTable:     r.String("hbase.message.table", d.HBase.MessageTable),
		RecordTable:      r.String("hbase.record.table", d.HBase.RecordTable),
		DeadTable:        r.String("hbase.dead.table", d.HBase.DeadTable),
		DeadContentTable: r.String("hbase.dead.content.table", d.HBase.DeadContentTable),
	}
	readTimeout := r.Millis("http.read.timeout.ms", httpguard.DefaultReadTimeout, 100*time.Millisecond, time.Hour)
	s.HTTPLimits = httpguard.Config{
		MaxConnections:    r.Int("http.max.connections", httpguard.DefaultMaxConnections, 1, 1_000_000),
		ReadTimeout:       readTimeout,
		ReadHeaderTimeout: min(readTimeout, httpguard.DefaultReadHeaderTimeout),
		IdleTimeout:       r.Millis("http.idle.timeout.ms", httpguard.DefaultIdleTimeout, 100*time.Millisecond, time.Hour),
	}
	syncSecret := r.String("sync.secret", "")
	s.SyncSecretFile = r.String("sync.secret.file", "")
	token, tokenFile := r.String("backup.admin.token", ""), r.String("backup.admin.token.file", "")
	for k, note := range ignoredKeys {
		r.Ignore(k, note)
	}
	for k, note := range ignoredHBaseKeys {
		hr.Ignore(k, note)
	}
	// The metaserver's keys of the same file, so one datasource.properties
	// serves both.
	dr.Ignore("jdbc.driverClassName", "the MySQL driver is built in")
	dr.Ignore("pool.size.max", "the dictionary needs a few connections (4)")
	if err := r.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", f.Path, err)
	}
	if err := hr.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", hf.Path, err)
	}
	if err := dr.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", df.Path, err)
	}
	if s.SyncSecret, err = syncauth.LoadSecret(syncSecret, s.SyncSecretFile); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if s.AdminToken, err = loadToken(token, tokenFile); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if s.SkipSubjects, err = loadSkip(s.SkipFile); err != nil {
		return Settings{}, nil, err
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return s, []*conf.Reader{r, hr, dr}, nil
}

// loadSkip reads skip_backup.properties at path: one subject per line,
// =true to skip it (=false, QMQ's other value, keeps it). A missing file
// skips nothing.
func loadSkip(path string) (map[string]bool, error) {
	sf, err := conf.LoadFile(filepath.Dir(path), filepath.Base(path))
	if err != nil {
		return nil, err
	}
	var skip map[string]bool
	for _, k := range sf.SortedKeys() {
		v, _ := sf.Get(k)
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %s=%q: want true (not backed up) or false", sf.Path, sf.Line(k), k, v)
		}
		if b {
			if skip == nil {
				skip = map[string]bool{}
			}
			skip[k] = true
		}
	}
	return skip, nil
}

// MinAdminTokenBytes is the shortest backup.admin.token accepted.
const MinAdminTokenBytes = 16

func loadToken(value, file string) (string, error) {
	value = strings.TrimSpace(value)
	if value != "" && file != "" {
		return "", fmt.Errorf("both backup.admin.token and backup.admin.token.file are set: keep one")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read backup.admin.token.file: %w", err)
		}
		value = strings.TrimSpace(string(b))
	}
	if value != "" && len(value) < MinAdminTokenBytes {
		return "", fmt.Errorf("backup.admin.token is %d bytes: use at least %d random bytes, e.g. `openssl rand -hex 16`", len(value), MinAdminTokenBytes)
	}
	return value, nil
}
