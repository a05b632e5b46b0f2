package backup

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/services/replication/syncauth"
)

// Configuration files in the conf directory: QMQ's backup.properties, and
// hbase.properties for store.type=hbase.
const (
	FileBackup = "backup.properties"
	FileHBase  = "hbase.properties"
	// FileDatasource names the metaserver's database, as QMQ's backup reads
	// it (JdbcTemplateHolder: jdbc.url, jdbc.username, jdbc.password): with
	// store.type=hbase its qmq_dic is the dictionary.
	FileDatasource = "datasource.properties"
	// FileSkip lists subjects not backed up, as QMQ's: <subject>=true.
	FileSkip = "skip_backup.properties"
)

// Store types (store.type).
const (
	StorePebble = "pebble" // embedded, under store.root (ours; the default)
	StoreHBase  = "hbase"  // HBase through its REST gateway (backup.hbase.rest.url)
)

// Settings are the backup service's whole configuration, typed: New takes
// them and reads no file. Start from DefaultSettings; LoadSettings maps
// backup.properties and hbase.properties onto them.
type Settings struct {
	MetaEndpoint string // meta.server.endpoint (required): http://host:8080/meta/address, consul://…, or host:port
	// Port is broker.port: with this machine's hostname it names the
	// backup's row in the metaserver's broker table (role 4, BACKUP), as
	// QMQ's backup does. Nothing listens on it.
	Port     int
	HTTPPort int    // backup.server.http.port: queries, /health, /metrics; 0 = a free port
	BindHost string // backup.bind.host (ours): "" = all interfaces

	StoreRoot string // store.root: the follower's checkpoint, and the Pebble store
	StoreType string // store.type: pebble (ours, the default) or hbase
	// PullMapTTL is rocks.db.ttl: how long a pull waits for its ack before
	// the backup forgets which messages it held.
	PullMapTTL    time.Duration
	EnableRecord  bool // enable.record: follow the action log into consume records
	BackupContent bool // backup.message.content (ours): keep every message's content, not only dead letters'
	RetentionDays int  // backup.retention.days (ours): the store drops entries older than this (30); 0 = keep
	HBase         HBaseSettings
	// SkipSubjects are skip_backup.properties' subjects (<subject>=true),
	// as QMQ's: their messages, retries and consume records are not backed
	// up; their dead letters are (an operator needs them to resend). The
	// set at start; with SkipFile the running backup follows the file.
	SkipSubjects map[string]bool
	// SkipFile is skip_backup.properties' path (LoadSettings sets it): the
	// backup polls it every SkipReloadInterval and applies a changed file
	// to what it indexes next, as QMQ reloads it live. "" = SkipSubjects
	// stay as given.
	SkipFile string
	// SkipReloadInterval is backup.skip.reload.ms (ours): how often
	// SkipFile's size and modification time are checked.
	SkipReloadInterval time.Duration
	SyncSecret         syncauth.Secret // sync.secret / sync.secret.file: the group's, as the broker's
	SyncSecretFile     string

	// CheckpointInterval is sync.offset.flush.interval (ms): how often the
	// follower saves how far the store has everything.
	CheckpointInterval time.Duration
	RequestTimeout     time.Duration // slave.sync.timeout: each sync request to the slave
	RetryInterval      time.Duration // backup.sync.retry.ms (ours): reconnecting to the slave
	StoreTimeout       time.Duration // backup.store.timeout.ms (ours): one write to the store
	StoreRetryMin      time.Duration // backup.store.retry.min.ms (ours): first pause after a failed write
	StoreRetryMax      time.Duration // backup.store.retry.max.ms (ours): longest pause
	MetaRefresh        time.Duration // backup.meta.refresh.ms (ours): heartbeat and re-asking which slave to follow

	// AdminToken (backup.admin.token or backup.admin.token.file) allows
	// resending dead letters (POST /api/message/dead/resend); "" = refused.
	AdminToken string

	HTTPLimits httpguard.Config // http.max.connections, http.read.timeout.ms, http.idle.timeout.ms

	// Consul registration (ours): service qmq-backup, tag group:<group>, HTTP check on /health.
	ConsulAddress         string        // consul.address; "" = CONSUL_HTTP_ADDR; both empty = none
	ConsulToken           string        // consul.token; "" = CONSUL_HTTP_TOKEN
	ConsulService         string        // consul.service.name (qmq-backup)
	ConsulDeregisterAfter time.Duration // consul.deregister.critical.after.ms
}

// HBaseSettings are hbase.properties' (ours: QMQ's Java client reads
// ZooKeeper keys there; we reach HBase through its REST gateway).
type HBaseSettings struct {
	RESTURL string        // backup.hbase.rest.url: the REST gateway, e.g. http://hbase-rest:8080
	Timeout time.Duration // backup.hbase.timeout.ms: one REST request; slower counts as unavailable
	// DictionaryPath is backup.dic.sqlite.path: the SQLite file of the
	// qmq_dic dictionary (names to the ids in row keys); "" =
	// store.root/dic.db. Backups writing to the same HBase tables must share
	// it (see docs/backup-follower.md).
	DictionaryPath string
	// JDBCURL, JDBCUser and JDBCPassword are datasource.properties'
	// jdbc.url, jdbc.username, jdbc.password: the metaserver's MySQL or
	// MariaDB, whose qmq_dic is then the dictionary — one for every backup
	// writing the same HBase tables, as QMQ's. "" = the SQLite file
	// DictionaryPath (fine for one backup only).
	JDBCURL, JDBCUser, JDBCPassword string
	// Tables are QMQ's table names (backup.properties: hbase.message.table,
	// hbase.record.table, hbase.dead.table, hbase.dead.content.table).
	MessageTable, RecordTable, DeadTable, DeadContentTable string
}

// DefaultSettings are QMQ's defaults where QMQ has the key, and ours.
func DefaultSettings() Settings {
	return Settings{
		Port:      20881,
		HTTPPort:  8080,
		StoreRoot: "/data", StoreType: StorePebble,
		PullMapTTL:    7200 * time.Second,
		EnableRecord:  true,
		RetentionDays: 30, // QMQ's query range
		HBase: HBaseSettings{Timeout: 10 * time.Second, MessageTable: "qmq_backup", RecordTable: "qmq_backup_record",
			DeadTable: "qmq_backup_dead", DeadContentTable: "qmq_backup_dead_content"},
		CheckpointInterval:    500 * time.Millisecond,
		RequestTimeout:        3 * time.Second,
		RetryInterval:         2 * time.Second,
		StoreTimeout:          10 * time.Second,
		StoreRetryMin:         100 * time.Millisecond,
		StoreRetryMax:         10 * time.Second,
		MetaRefresh:           10 * time.Second,
		SkipReloadInterval:    5 * time.Second,
		ConsulService:         "qmq-backup",
		ConsulDeregisterAfter: time.Hour,
	}
}

// Validate reports what the backup cannot run with, one line per problem,
// each naming its key.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(s.MetaEndpoint) == "" {
		bad("meta.server.endpoint is required: the metaserver's http://host:8080/meta/address (the backup asks it which slave to follow)")
	}
	if s.Port <= 0 || s.Port > 65535 {
		bad("broker.port %d: want 1..65535, the port of this backup's row in the broker table (qmq tools AddBroker --role=4)", s.Port)
	}
	if s.HTTPPort < 0 || s.HTTPPort > 65535 {
		bad("backup.server.http.port %d: want 0..65535 (0: a free port)", s.HTTPPort)
	}
	if s.StoreRoot == "" {
		bad("store.root is empty: give the directory for the follower's checkpoint and the Pebble store")
	}
	switch s.StoreType {
	case StorePebble:
	case StoreHBase:
		if u, err := url.Parse(s.HBase.RESTURL); s.HBase.RESTURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("store.type=hbase needs backup.hbase.rest.url in %s: the HBase REST gateway, e.g. http://hbase-rest:8080 (got %q)", FileHBase, s.HBase.RESTURL)
		}
	default:
		bad("store.type %q: want %s or %s", s.StoreType, StorePebble, StoreHBase)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"rocks.db.ttl", s.PullMapTTL}, {"sync.offset.flush.interval", s.CheckpointInterval}, {"slave.sync.timeout", s.RequestTimeout},
		{"backup.sync.retry.ms", s.RetryInterval}, {"backup.store.timeout.ms", s.StoreTimeout}, {"backup.store.retry.min.ms", s.StoreRetryMin},
		{"backup.store.retry.max.ms", s.StoreRetryMax}, {"backup.meta.refresh.ms", s.MetaRefresh}, {"backup.skip.reload.ms", s.SkipReloadInterval}} {
		if d.v <= 0 {
			bad("%s must be positive (got %s)", d.key, d.v)
		}
	}
	if s.StoreRetryMax < s.StoreRetryMin {
		bad("backup.store.retry.max.ms (%s) is below backup.store.retry.min.ms (%s)", s.StoreRetryMax, s.StoreRetryMin)
	}
	if s.RetentionDays < 0 {
		bad("backup.retention.days %d: want 0 (keep) or more", s.RetentionDays)
	}
	if s.ConsulAddress != "" && s.ConsulDeregisterAfter < consul.MinDeregisterCriticalAfter {
		bad("consul.deregister.critical.after.ms %s: Consul's minimum is %s", s.ConsulDeregisterAfter, consul.MinDeregisterCriticalAfter)
	}
	return errors.Join(errs...)
}
