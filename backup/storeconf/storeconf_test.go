package storeconf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/backup/rowstore"
	"github.com/qmq-go/qmq/conf"
)

func read(t *testing.T, props string) (Settings, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "backup.properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := conf.LoadFile(dir, "backup.properties")
	if err != nil {
		t.Fatal(err)
	}
	r := conf.NewReader(f, conf.Lookup{Env: func(string) (string, bool) { return "", false }})
	s := Read(r, DefaultSettings(dir))
	if err := r.Err(); err != nil {
		return s, err
	}
	return s, s.Validate()
}

func TestReadAndOpen(t *testing.T) {
	s, err := read(t, "backup.retention.days=7\nbackup.store.sync=false\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != TypePebble || s.Pebble.RetentionDays != 7 || s.Pebble.Sync || !strings.HasSuffix(s.Pebble.Dir, "backupstore") {
		t.Fatalf("settings %+v", s.Pebble)
	}
	st, err := Open(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutMessages(context.Background(), []backup.Message{{Subject: "s", MessageID: "m", BrokerGroup: "bg", CreateTime: time.Now()}}); err != nil {
		t.Fatal(err)
	}

	gw := hbasetest.Start(t)
	s, err = read(t, "store.type=hbase\nbackup.hbase.rest.url="+gw.URL()+"\nhbase.message.table=qmq_backup_v2\nbackup.key.timezone=Asia/Shanghai\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.HBase.TableNames[rowstore.Messages] != "qmq_backup_v2" || s.KeyZone != "Asia/Shanghai" {
		t.Fatalf("hbase settings %+v", s.HBase)
	}
	hs, err := Open(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if err := hs.PutMessages(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestBadKeys(t *testing.T) {
	for props, want := range map[string]string{
		"store.type=rocks\n":                                "store.type",
		"backup.retention.days=-1\n":                        "backup.retention.days",
		"store.type=hbase\n":                                "REST gateway URL",
		"backup.key.timezone=Mars/Olympus\n":                "backup.key.timezone",
		"store.type=hbase\nbackup.hbase.rest.url=ftp://x\n": "not an http",
	} {
		if _, err := read(t, props); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want an error naming %s", props, err, want)
		}
	}
}
