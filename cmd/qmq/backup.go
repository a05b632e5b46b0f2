package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/conf"
	backupsvc "github.com/qmq-go/qmq/services/backup"
)

// runBackup is `qmq backup --conf DIR`: the backup service of one broker
// group (reads backup.properties and hbase.properties).
func runBackup(args []string, stderr io.Writer) int {
	return runServer("backup", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger) (runnable, error) {
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
	srv, err := backupsvc.New(settings, store, backupsvc.Options{Hostname: hostname, Logger: log, Query: backupQueryHandler(store, log)})
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
		ps.RetentionDays = s.RetentionDays
		ps.Logger = log.Named("store")
		st, err := pebblestore.Open(ps)
		if err != nil {
			return nil, fmt.Errorf("open the backup's Pebble store in %s: %w", ps.Dir, err)
		}
		return st, nil
	case backupsvc.StoreHBase:
		path := s.HBase.DictionaryPath
		if path == "" {
			path = filepath.Join(s.StoreRoot, "dic.db")
		}
		db, err := dic.OpenSQLite(context.Background(), path)
		if err != nil {
			return nil, err
		}
		dict, err := dic.NewSQL(db, dic.SQLite, path)
		if err != nil {
			db.Close()
			return nil, err
		}
		hs := hbasestore.DefaultSettings()
		hs.RestURL, hs.Timeout, hs.RetentionDays, hs.Logger = s.HBase.RESTURL, s.HBase.Timeout, s.RetentionDays, log.Named("store")
		st, err := hbasestore.New(hs, dict)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open the backup's HBase store at %s: %w", s.HBase.RESTURL, err)
		}
		return &closeAlso{Store: st, also: db.Close}, nil
	}
	return nil, fmt.Errorf("store.type=%s: want %s or %s", s.StoreType, backupsvc.StorePebble, backupsvc.StoreHBase)
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
// always, others with backup.message.content).
func backupQueryHandler(store backup.Store, log hclog.Logger) http.Handler {
	o := query.DefaultOptions()
	o.Logger = log.Named("query")
	return query.NewHandler(store, o)
}
