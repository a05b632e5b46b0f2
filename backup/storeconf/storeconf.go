package storeconf

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/backup/rowstore"
	"github.com/qmq-go/qmq/conf"
)

// Store types (store.type).
const (
	TypePebble = "pebble"
	TypeHBase  = "hbase"
)

// Settings of the backup's store.
type Settings struct {
	Type   string
	Pebble pebblestore.Settings
	HBase  hbasestore.Settings
	// Dictionary is where the HBase store's qmq_dic lives (the metaserver's
	// database); Pebble keeps its own.
	Dictionary dic.Source
	// KeyZone is the IANA zone of the row keys' yyMMddHHmmss
	// (backup.key.timezone): QMQ's JVM default zone, "Local" for this host's.
	KeyZone string
}

// DefaultSettings: Pebble under <root>/backupstore.
func DefaultSettings(root string) Settings {
	p := pebblestore.DefaultSettings()
	p.Dir = filepath.Join(root, "backupstore")
	return Settings{Type: TypePebble, Pebble: p, HBase: hbasestore.DefaultSettings(), KeyZone: "Local",
		Dictionary: dic.Source{SQLitePath: filepath.Join(root, "metaserver.db")}}
}

// Validate checks the settings of the chosen store.
func (s Settings) Validate() error {
	if _, err := time.LoadLocation(s.KeyZone); err != nil {
		return fmt.Errorf("backup.key.timezone %q: %w (use an IANA zone such as Asia/Shanghai, or Local)", s.KeyZone, err)
	}
	switch s.Type {
	case TypePebble:
		return s.Pebble.Validate()
	case TypeHBase:
		if s.Dictionary.JDBCURL == "" && s.Dictionary.SQLitePath == "" {
			return errors.New("store.type=hbase needs the dictionary's database: jdbc.url in datasource.properties, or the metaserver's SQLite file")
		}
		return s.HBase.Validate()
	}
	return fmt.Errorf("store.type %q: want %s or %s", s.Type, TypePebble, TypeHBase)
}

// Read reads the store's keys from r onto d. The dictionary's database
// (d.Dictionary) comes from datasource.properties, which the caller reads.
func Read(r *conf.Reader, d Settings) Settings {
	s := d
	s.Type = r.OneOf("store.type", d.Type, TypePebble, TypeHBase)
	days := r.Int("backup.retention.days", d.Pebble.RetentionDays, 0, 36500)
	s.KeyZone = r.String("backup.key.timezone", d.KeyZone)

	s.Pebble.Dir = r.String("backup.store.dir", d.Pebble.Dir)
	s.Pebble.RetentionDays = days
	s.Pebble.Sync = r.Bool("backup.store.sync", d.Pebble.Sync)
	s.Pebble.IDIndex = r.Bool("backup.store.id.index", d.Pebble.IDIndex)
	s.Pebble.CacheBytes = r.Int64("backup.store.cache.mb", d.Pebble.CacheBytes>>20, 8, 1<<20) << 20
	s.Pebble.RetentionCheckInterval = r.Seconds("backup.retention.check.interval.seconds", d.Pebble.RetentionCheckInterval, time.Second, 24*time.Hour)

	s.HBase.RestURL = r.String("backup.hbase.rest.url", d.HBase.RestURL)
	s.HBase.Timeout = r.Millis("backup.hbase.timeout.ms", d.HBase.Timeout, 10*time.Millisecond, 10*time.Minute)
	s.HBase.MaxConnections = r.Int("backup.hbase.max.connections", d.HBase.MaxConnections, 1, 1024)
	s.HBase.ScanBatch = r.Int("backup.hbase.scan.batch", d.HBase.ScanBatch, 1, 100_000)
	s.HBase.RetentionDays = days
	names := map[rowstore.Table]string{}
	for key, t := range map[string]rowstore.Table{
		"hbase.message.table":       rowstore.Messages,
		"hbase.record.table":        rowstore.Records,
		"hbase.dead.table":          rowstore.Dead,
		"hbase.dead.content.table":  rowstore.DeadContent,
		"backup.hbase.detail.table": rowstore.Details,
	} {
		if n := r.String(key, string(t)); n != string(t) {
			names[t] = n
		}
	}
	if len(names) > 0 {
		s.HBase.TableNames = names
	}
	return s
}

// Open opens the store s names. For HBase it opens the dictionary's
// database too, and the returned store's Close closes both.
func Open(ctx context.Context, s Settings, log hclog.Logger) (backup.Store, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(s.KeyZone)
	s.Pebble.Location, s.HBase.Location = loc, loc
	switch s.Type {
	case TypePebble:
		s.Pebble.Logger = log
		return pebblestore.Open(s.Pebble)
	default:
		d, db, err := dic.Open(ctx, s.Dictionary)
		if err != nil {
			return nil, err
		}
		s.HBase.Logger = log
		st, err := hbasestore.New(s.HBase, d)
		if err != nil {
			db.Close()
			return nil, err
		}
		return &withDB{Store: st, db: db}, nil
	}
}

type withDB struct {
	*hbasestore.Store
	db *sql.DB
}

func (w *withDB) Close() error {
	return errors.Join(w.Store.Close(), w.db.Close())
}
