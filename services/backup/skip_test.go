package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// TestSkipBackupSubjects: a subject of skip_backup.properties has no index
// entries, retries or consume records in the store, but its dead letters
// are kept (as QMQ's); other subjects are backed up as usual.
func TestSkipBackupSubjects(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	s.SkipSubjects = map[string]bool{"backup.skipped": true}
	store := newMemStore()
	b := startBackup(t, s, host, store)
	b.waitHealthy("")

	const group = "workers"
	for _, subject := range []string{"backup.skipped", "backup.kept"} {
		consumerRun(t, c, subject, group, func(m *client.Message) error {
			if m.Property("fail") != "" {
				return errAlwaysFails
			}
			return nil
		}, client.WithMaxRetries(2))
	}
	p := newProducer(t, c)
	failing := func(i int) bool { return i == 2 }
	skipped := send(t, p, "backup.skipped", 6, failing)
	kept := send(t, p, "backup.kept", 6, failing)

	testutil.EventuallyState(t, 30*time.Second, "backup.kept indexed", func() (bool, string) {
		return hasAll(kept, ids(store.messages(backup.KindNormal, "backup.kept")))
	})
	testutil.EventuallyState(t, 40*time.Second, "both subjects' dead letters indexed", func() (bool, string) {
		ok1, why1 := hasAll(skipped[2:3], ids(store.messages(backup.KindDead, "backup.skipped")))
		ok2, why2 := hasAll(kept[2:3], ids(store.messages(backup.KindDead, "backup.kept")))
		return ok1 && ok2, why1 + "; " + why2
	})
	testutil.EventuallyState(t, 30*time.Second, "backup.kept's pulls and acks recorded", func() (bool, string) {
		n := len(store.records("backup.kept", group))
		return n >= 2*len(kept), fmt.Sprintf("%d records", n)
	})
	// By now the backup has read past everything of backup.skipped too.
	if got := store.messages(backup.KindNormal, "backup.skipped"); len(got) != 0 {
		t.Fatalf("backup.skipped is in skip_backup.properties but %d of its messages were indexed", len(got))
	}
	if got := store.messages(backup.KindRetry, "backup.skipped"); len(got) != 0 {
		t.Fatalf("backup.skipped's retries were indexed: %d", len(got))
	}
	for _, stored := range []string{"backup.skipped", "%RETRY%backup.skipped%" + group} {
		if got := store.records(stored, group); len(got) != 0 {
			t.Fatalf("%s's consume records were written: %d", stored, len(got))
		}
	}
}

func TestSkipBackupFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, FileSkip), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := conf.Lookup{Overrides: conf.Overrides{"meta.server.endpoint": "http://127.0.0.1:1/meta/address"}, Env: func(string) (string, bool) { return "", false }}
	write("# QMQ's format\norder.changed=true\nlog.noise=TRUE\nkept.subject=false\n")
	s, _, err := LoadSettings(dir, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.SkipSubjects) != 2 || !s.SkipSubjects["order.changed"] || !s.SkipSubjects["log.noise"] {
		t.Fatalf("SkipSubjects = %v, want order.changed and log.noise", s.SkipSubjects)
	}
	write("order.changed=yes please\n")
	if _, _, err := LoadSettings(dir, l); err == nil || !strings.Contains(err.Error(), FileSkip) || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "order.changed") {
		t.Fatalf("a bad value: %v; want the file, the line and the subject", err)
	}
}
