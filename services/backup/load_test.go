package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
)

func noEnv(string) (string, bool) { return "", false }

// TestSampleConfLoads: conf/backup.properties and conf/hbase.properties
// load with no unknown key and give the documented values.
func TestSampleConfLoads(t *testing.T) {
	s, rep, err := LoadSettings(filepath.Join("..", "..", "conf"), conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unknown) > 0 {
		t.Fatalf("unknown keys in the samples: %v", rep.Unknown)
	}
	if s.Port != 8082 || s.HTTPPort != 8082 || s.StoreType != StorePebble || s.PullMapTTL != 2*time.Hour || !s.EnableRecord ||
		s.CheckpointInterval != 500*time.Millisecond || s.HBase.RESTURL == "" || s.HBase.MessageTable != "qmq_backup" || s.HBase.DeadContentTable != "qmq_backup_dead_content" {
		t.Fatalf("settings %+v", s)
	}
}

// TestLoadReportsBadInput: unknown keys are reported (a typo gets the
// nearest known key), bad values and missing requirements are errors that
// name the key.
func TestLoadReportsBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(FileBackup, "meta.server.endpoint=http://m:8080/meta/address\nrocks.db.tll=60\nrocks.db.path=/x\n")
	_, rep, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unknown) != 1 || !strings.Contains(rep.Unknown[0].String(), "rocks.db.ttl") {
		t.Fatalf("unknown keys %v: want rocks.db.tll, with rocks.db.ttl suggested", rep.Unknown)
	}
	if len(rep.Ignored) != 1 {
		t.Fatalf("ignored %v: want rocks.db.path", rep.Ignored)
	}
	for _, c := range []struct{ file, body, want string }{
		{FileBackup, "", "meta.server.endpoint is required"},
		{FileBackup, "meta.server.endpoint=x:1\nstore.type=mysql\n", "store.type"},
		{FileBackup, "meta.server.endpoint=x:1\nstore.type=hbase\n", "backup.hbase.rest.url"},
		{FileBackup, "meta.server.endpoint=x:1\nbackup.admin.token=short\n", "backup.admin.token is 5 bytes"},
		{FileBackup, "meta.server.endpoint=x:1\nbackup.store.retry.min.ms=5000\nbackup.store.retry.max.ms=100\n", "backup.store.retry.max.ms"},
		{FileBackup, "meta.server.endpoint=x:1\nrocks.db.ttl=abc\n", "rocks.db.ttl"},
	} {
		write(FileBackup, c.body)
		if _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error naming %q", c.body, err, c.want)
		}
	}
	write(FileBackup, "meta.server.endpoint=x:1\n")
	if _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv, Overrides: conf.Overrides{"no.such.key": "1"}}); err == nil {
		t.Error("an unknown --set key was accepted")
	}
}
