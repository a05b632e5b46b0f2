package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testmysql"
	backupsvc "github.com/qmq-go/qmq/services/backup"
)

// TestHBaseBackupsShareTheMetaserversDictionary: two groups' backups write
// one HBase. With datasource.properties naming the metaserver's MariaDB,
// both use its qmq_dic, so what one wrote the other finds (the row keys
// hold dictionary ids); each with its own SQLite file, they do not.
func TestHBaseBackupsShareTheMetaserversDictionary(t *testing.T) {
	hb := hbasetest.Start(t)
	hs := hbasestore.DefaultSettings()
	hs.RestURL = hb.URL()
	if _, err := hbasestore.CreateTablesAt(context.Background(), hs); err != nil {
		t.Fatal(err)
	}
	dbName, dsn := testmysql.Database(t, "qmq_backup_dic_")
	applyBackupSchema(t, dsn)
	cfg := testmysql.ServerConfig(t)
	jdbc := "jdbc:mysql://" + cfg.Addr + "/" + dbName

	open := func(t *testing.T, name, datasource string) backup.Store {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "backup.properties"), "meta.server.endpoint=http://127.0.0.1:1/meta/address\nstore.type=hbase\nstore.root="+filepath.Join(dir, name)+"\n")
		writeFile(t, filepath.Join(dir, "hbase.properties"), "backup.hbase.rest.url="+hb.URL()+"\n")
		if datasource != "" {
			writeFile(t, filepath.Join(dir, "datasource.properties"), datasource)
		}
		s, _, err := backupsvc.LoadSettings(dir, conf.Lookup{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := openBackupStore(s, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	writeAndRead := func(t *testing.T, a, b backup.Store, subject string) error {
		if err := a.PutMessages(context.Background(), []backup.Message{{Subject: subject, MessageID: "m1", BrokerGroup: "g1", Sequence: 1, CreateTime: at}}); err != nil {
			t.Fatal(err)
		}
		p, err := b.FindMessages(context.Background(), backup.MessageQuery{Subject: subject, Len: 10})
		if err == nil && (len(p.Messages) != 1 || p.Messages[0].MessageID != "m1") {
			t.Fatalf("g2's backup found %+v, want g1's m1", p.Messages)
		}
		return err
	}

	t.Run("metaserver database", func(t *testing.T) {
		ds := "jdbc.url=" + jdbc + "\njdbc.username=" + cfg.User + "\njdbc.password=" + cfg.Passwd + "\njdbc.driverClassName=com.mysql.jdbc.Driver\n"
		a, b := open(t, "g1", ds), open(t, "g2", ds)
		if err := writeAndRead(t, a, b, "shared.dictionary"); err != nil {
			t.Fatalf("g2's backup does not find what g1's wrote to the same HBase: %v", err)
		}
	})
	t.Run("SQLite fallback", func(t *testing.T) {
		a, b := open(t, "g1", ""), open(t, "g2", "")
		if err := writeAndRead(t, a, b, "own.dictionaries"); !errors.Is(err, backup.ErrNotFound) {
			t.Fatalf("with a SQLite dictionary each, g2's backup: %v; want the subject unknown to it", err)
		}
	})
	t.Run("unreachable database", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "backup.properties"), "meta.server.endpoint=http://127.0.0.1:1/meta/address\nstore.type=hbase\nstore.root="+dir+"\n")
		writeFile(t, filepath.Join(dir, "hbase.properties"), "backup.hbase.rest.url="+hb.URL()+"\n")
		writeFile(t, filepath.Join(dir, "datasource.properties"), "jdbc.url=jdbc:mysql://"+cfg.Addr+"/no_such_database_here\njdbc.username="+cfg.User+"\n")
		s, _, err := backupsvc.LoadSettings(dir, conf.Lookup{})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := openBackupStore(s, hclog.NewNullLogger()); err == nil {
			st.Close()
			t.Fatal("a backup started with a dictionary database it cannot use")
		} else if !strings.Contains(err.Error(), "datasource.properties") || !strings.Contains(err.Error(), "no_such_database_here") {
			t.Fatalf("error %v does not name the file and the database", err)
		}
	})
}

// applyBackupSchema creates qmq_dic from schema/init_backup.sql.
func applyBackupSchema(t *testing.T, dsn string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ddl, err := os.ReadFile("../../schema/init_backup.sql")
	if err != nil {
		t.Fatal(err)
	}
	var stmt []string
	for _, l := range strings.Split(string(ddl), "\n") {
		if !strings.HasPrefix(l, "--") {
			stmt = append(stmt, l)
		}
	}
	if _, err := db.Exec(strings.Join(stmt, "\n")); err != nil {
		t.Fatalf("apply schema/init_backup.sql: %v", err)
	}
}
