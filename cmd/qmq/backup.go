package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/backup/rowstore"
	"github.com/qmq-go/qmq/conf"
	backupsvc "github.com/qmq-go/qmq/services/backup"
)

// runBackup is `qmq backup --conf DIR`: the backup service of one broker
// group (reads backup.properties and hbase.properties).
func runBackup(args []string, stderr io.Writer) int {
	return runServer("backup", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger, _ trace.TracerProvider) (runnable, error) {
		// The backup records no spans: it copies what the broker traced.
		settings, keys, err := backupsvc.LoadSettings(dir, conf.Lookup{Overrides: o})
		if err != nil {
			return nil, err
		}
		keys.Log(log)
		return startBackup(settings, "", log)
	})
}

// backupProcess runs a backup server and closes its store after it stopped.
type backupProcess struct {
	srv   *backupsvc.Server
	store backup.Store
	log   hclog.Logger
}

func (p *backupProcess) Run(ctx context.Context) error {
	err := p.srv.Run(ctx)
	if cerr := p.store.Close(); cerr != nil {
		p.log.Error("closing the backup store failed", "error", cerr)
	}
	return err
}

// startBackup opens the store settings name and builds the backup server
// around it (hostname "" = this machine's).
func startBackup(settings backupsvc.Settings, hostname string, log hclog.Logger) (*backupProcess, error) {
	store, err := openBackupStore(settings, log)
	if err != nil {
		return nil, err
	}
	srv, err := backupsvc.New(settings, store, backupsvc.Options{Hostname: hostname, Logger: log, Query: func(detail query.DetailSource) http.Handler {
		return backupQueryHandler(store, detail, log)
	}})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &backupProcess{srv: srv, store: store, log: log}, nil
}

// openBackupStore opens store.type's store.
func openBackupStore(s backupsvc.Settings, log hclog.Logger) (backup.Store, error) {
	switch s.StoreType {
	case backupsvc.StorePebble:
		ps := pebblestore.DefaultSettings()
		ps.Dir = filepath.Join(s.StoreRoot, "pebble")
		// No fsync per Put: the follower syncs the store before each
		// checkpoint save (every sync.offset.flush.interval), which is all a
		// restart needs — entries after the checkpoint are replayed. An
		// fsync per batch cost two thirds of the indexing rate.
		ps.Sync = false
		ps.RetentionDays = s.RetentionDays
		ps.Logger = log.Named("store")
		st, err := pebblestore.Open(ps)
		if err != nil {
			return nil, fmt.Errorf("open the backup's Pebble store in %s: %w", ps.Dir, err)
		}
		return st, nil
	case backupsvc.StoreHBase:
		dict, db, err := openHBaseDictionary(s, log)
		if err != nil {
			return nil, err
		}
		hs := hbasestore.DefaultSettings()
		hs.RestURL, hs.Timeout, hs.RetentionDays, hs.Logger = s.HBase.RESTURL, s.HBase.Timeout, s.RetentionDays, log.Named("store")
		hs.TableNames = map[rowstore.Table]string{rowstore.Messages: s.HBase.MessageTable, rowstore.Records: s.HBase.RecordTable,
			rowstore.Dead: s.HBase.DeadTable, rowstore.DeadContent: s.HBase.DeadContentTable}
		st, err := hbasestore.New(hs, dict)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open the backup's HBase store at %s: %w", s.HBase.RESTURL, err)
		}
		return &closeAlso{Store: st, also: db.Close}, nil
	}
	return nil, fmt.Errorf("store.type=%s: want %s or %s", s.StoreType, backupsvc.StorePebble, backupsvc.StoreHBase)
}

// openHBaseDictionary opens the dictionary of the HBase store: qmq_dic in
// the metaserver's MySQL/MariaDB when datasource.properties names it (one
// dictionary for every backup writing the same tables, as QMQ's), else a
// SQLite file of this backup's own. The caller closes db.
func openHBaseDictionary(s backupsvc.Settings, log hclog.Logger) (dic.Dictionary, *sql.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.HBase.JDBCURL != "" {
		dict, db, err := dic.Open(ctx, dic.Source{JDBCURL: s.HBase.JDBCURL, User: s.HBase.JDBCUser, Password: s.HBase.JDBCPassword})
		if err != nil {
			return nil, nil, fmt.Errorf("open the backup's dictionary (qmq_dic) in %s's jdbc.url %s: %w", backupsvc.FileDatasource, s.HBase.JDBCURL, err)
		}
		log.Info("dictionary: qmq_dic in the metaserver's database", "jdbc.url", s.HBase.JDBCURL)
		return dict, db, nil
	}
	path := s.HBase.DictionaryPath
	if path == "" {
		path = filepath.Join(s.StoreRoot, "dic.db")
	}
	db, err := dic.OpenSQLite(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	dict, err := dic.NewSQL(db, dic.SQLite, path)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	log.Warn("dictionary: a SQLite file of this backup's own; backups of other groups writing the same HBase tables need one shared dictionary: set jdbc.url in "+backupsvc.FileDatasource, "path", path)
	return dict, db, nil
}

// closeAlso closes what the store was built on after the store.
type closeAlso struct {
	backup.Store
	also func() error
}

func (c *closeAlso) Close() error {
	err := c.Store.Close()
	if aerr := c.also(); err == nil {
		err = aerr
	}
	return err
}

// backupQueryHandler is the query API (QMQ's /api/message…) on the
// backup's HTTP port. Details come from the stored content (dead letters
// always, others with backup.message.content), else from detail (the
// group's slave).
func backupQueryHandler(store backup.Store, detail query.DetailSource, log hclog.Logger) http.Handler {
	o := query.DefaultOptions()
	o.Detail = detail
	o.Logger = log.Named("query")
	return query.NewHandler(store, o)
}
