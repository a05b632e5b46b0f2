package backup

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
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

// writeAtomic replaces path's content as an operator's tool should (write
// aside, rename): the poller never sees half a file.
func writeAtomic(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// metricValue reads one series of the backup's /metrics, e.g.
// `qmq_backup_skip_reloads_total{result="ok"}` (-1: not exported).
func (b *testBackup) metricValue(series string) float64 {
	b.t.Helper()
	resp, err := http.Get("http://" + b.srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// TestSkipBackupReload: the running backup follows skip_backup.properties
// (a real file, changed under it): a subject added stops being indexed, a
// subject removed is indexed again, each reload is logged with what changed
// and counted in /metrics, and a file that does not parse keeps the
// previous list, logging the file and line.
func TestSkipBackupReload(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	s, host := registerBackup(t, c, "g1")
	const a, bsub, sentinel = "backup.reload.a", "backup.reload.b", "backup.reload.sentinel"
	path := filepath.Join(t.TempDir(), FileSkip)
	writeAtomic(t, path, a+"=true\n")
	var err error
	if s.SkipSubjects, err = loadSkip(path); err != nil {
		t.Fatal(err)
	}
	s.SkipFile, s.SkipReloadInterval = path, 50*time.Millisecond
	store := newMemStore()
	b := startBackup(t, s, host, store)
	b.waitHealthy("")
	p := newProducer(t, c)

	// round sends to a and b, then to the sentinel: the log is read in
	// order, so once the sentinel's message is indexed, a's and b's were
	// read too and indexed or skipped.
	round := func(name string) (sentA, sentB []string) {
		t.Helper()
		sentA, sentB = send(t, p, a, 3, nil), send(t, p, bsub, 3, nil)
		last := send(t, p, sentinel, 1, nil)
		testutil.EventuallyState(t, 30*time.Second, name+": the sentinel indexed", func() (bool, string) {
			return hasAll(last, ids(store.messages(backup.KindNormal, sentinel)))
		})
		return sentA, sentB
	}
	indexed := func(subject string, sent []string) int {
		have := map[string]bool{}
		for _, id := range ids(store.messages(backup.KindNormal, subject)) {
			have[id] = true
		}
		n := 0
		for _, id := range sent {
			if have[id] {
				n++
			}
		}
		return n
	}
	waitReloads := func(result string, n float64) {
		t.Helper()
		series := `qmq_backup_skip_reloads_total{result="` + result + `"}`
		testutil.EventuallyState(t, 10*time.Second, series, func() (bool, string) {
			v := b.metricValue(series)
			return v >= n, fmt.Sprintf("%s = %v, want %v", series, v, n)
		})
	}
	if v := b.metricValue(`qmq_backup_skip_subjects`); v != 1 {
		t.Fatalf("qmq_backup_skip_subjects = %v at start, want 1", v)
	}

	a1, b1 := round("skipping a")
	if n := indexed(a, a1); n != 0 {
		t.Fatalf("%s is skipped but %d of its messages were indexed", a, n)
	}
	if n := indexed(bsub, b1); n != len(b1) {
		t.Fatalf("%s is not skipped but %d of %d of its messages were indexed", bsub, n, len(b1))
	}

	// Swap: skip b, back up a again.
	writeAtomic(t, path, "# swapped\n"+bsub+"=true\n"+a+"=false\n")
	waitReloads("ok", 1)
	if log := b.logs.String(); !strings.Contains(log, "no_longer_backed_up="+bsub) || !strings.Contains(log, "backed_up_again="+a) {
		t.Fatalf("the reload's log line does not say what changed:\n%s", log)
	}
	a2, b2 := round("after the swap")
	if n := indexed(a, a2); n != len(a2) {
		t.Fatalf("%s was removed from the file but only %d of %d of its new messages were indexed", a, n, len(a2))
	}
	if n := indexed(bsub, b2); n != 0 {
		t.Fatalf("%s was added to the file but %d of its new messages were indexed", bsub, n)
	}
	if n := indexed(a, a1); n != 0 {
		t.Fatalf("messages of %s read before the reload were indexed afterwards: %d", a, n)
	}

	// A broken file: logged with its line, the previous list kept.
	writeAtomic(t, path, bsub+"=true\n"+a+"=sometimes\n")
	waitReloads("error", 1)
	if log := b.logs.String(); !strings.Contains(log, "keeping the previous list") || !strings.Contains(log, "line 2") || !strings.Contains(log, a) {
		t.Fatalf("the bad file's error does not name its line and subject:\n%s", log)
	}
	a3, b3 := round("after a bad file")
	if n, m := indexed(a, a3), indexed(bsub, b3); n != len(a3) || m != 0 {
		t.Fatalf("after a bad file: %d of %d of %s and %d of %s indexed; want the previous list (a backed up, b skipped)", n, len(a3), a, m, bsub)
	}
	if v := b.metricValue(`qmq_backup_skip_subjects`); v != 1 {
		t.Fatalf("qmq_backup_skip_subjects = %v, want 1 (b)", v)
	}

	// The file removed: nothing is skipped any more.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitReloads("ok", 2)
	_, b4 := round("without the file")
	if n := indexed(bsub, b4); n != len(b4) {
		t.Fatalf("skip_backup.properties removed: %d of %d of %s indexed", n, len(b4), bsub)
	}
}

// TestSkipListReload: the list swaps whole, reports what changed and keeps
// the previous set on a bad file (no cluster; run with -race).
func TestSkipListReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileSkip)
	logs := &testlog.Buffer{}
	m := newMetrics(func() Lag { return Lag{} }, func() int { return 0 })
	l := newSkipList(map[string]bool{"x": true}, path, 5*time.Millisecond, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}), m)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// No file: the start check finds an empty list, which differs from x.
	testutil.Eventually(t, 5*time.Second, "the start check applied the missing file", func() bool { return len(l.get()) == 0 })
	for i, c := range []struct {
		body string
		want string
	}{
		{"y=true\nz=true\n", "y,z"},
		{"z=true\n", "z"},
		{"z=true\nw=nope\n", "z"}, // kept
		{"w=true\n", "w"},
	} {
		writeAtomic(t, path, c.body)
		testutil.Eventually(t, 5*time.Second, fmt.Sprintf("step %d applied", i), func() bool {
			return strings.Join(slices.Sorted(maps.Keys(l.get())), ",") == c.want && (c.body != "z=true\nw=nope\n" || logs.Count("line 2") > 0)
		})
	}
	if logs.Count("keeping the previous list") != 1 {
		t.Fatalf("want one error for the bad file:\n%s", logs.String())
	}
	added, removed := diffSets(map[string]bool{"a": true, "b": true}, map[string]bool{"b": true, "c": true, "d": true})
	if strings.Join(added, ",") != "c,d" || strings.Join(removed, ",") != "a" {
		t.Fatalf("diffSets: added %v removed %v", added, removed)
	}
}
