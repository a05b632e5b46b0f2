package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/pebblestore"
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
	}
	return nil, fmt.Errorf("store.type=%s is not available in this build yet; use store.type=%s", s.StoreType, backupsvc.StorePebble)
}

// backupQueryHandler is the query API on the backup's HTTP port (nil: not
// built in yet).
func backupQueryHandler(store backup.Store, log hclog.Logger) http.Handler { return nil }
