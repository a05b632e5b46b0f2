package watchdog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// health reads and decodes a watchdog's /health.
func (w *watchdog) health(t *testing.T) (int, healthReport, string) {
	t.Helper()
	code, body := w.get(t, "/health")
	var h healthReport
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health %q: %v", body, err)
	}
	return code, h, body
}

// Rows of a subject that no real-time broker group serves (its only
// group is read-only for it: the metaserver gives producers no group)
// fail to send. As QMQ's watchdog, ours keeps them: status stays 0, never
// deleted; ours also raises error (QMQ's leaves a failed row untouched
// and reads it again at once), so it waits checkInterval and is marked -2
// only after watchdog.max.errors failures. The failures are logged once
// per round for the whole database, not per row, with the reason, which
// /health shows too. Once the group takes the subject again, the rows are
// sent, each once.
func TestNoRouteRowsKeptAndRetried(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.noroute.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.cluster.Admin().MarkReadonly(ctx, "g1", subject); err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for i := range 3 {
		id := fmt.Sprintf("261207.5.%d", i)
		rows[id] = db.insert(t, javaContent(id, subject, nil, nil))
	}
	s := e.settings()
	s.SendTimeout = 300 * time.Millisecond
	w := e.start(t, "wd-a", s)
	testutil.Eventually(t, 30*time.Second, "every row failed at least twice, kept with status 0", func() bool {
		for _, row := range rows {
			if st, errs, ok := db.row(t, row); !ok || st != 0 || errs < 2 {
				return false
			}
		}
		return true
	})
	lines := strings.Split(w.logs.String(), "\n")
	var failLines int
	for _, l := range lines {
		if strings.Contains(l, "resent rows left by applications") && strings.Contains(l, "failed=") {
			failLines++
			if !strings.Contains(l, "failed=3") || !strings.Contains(l, "no broker group available") {
				t.Errorf("a round's log line should count the 3 failed rows and say why: %s", l)
			}
		}
	}
	if failLines == 0 {
		t.Error("the failed rounds were not logged")
	}
	_, h, body := w.health(t)
	if len(h.Databases) != 1 || h.Databases[0].Failed < 6 || !strings.Contains(h.Databases[0].LastSendError, "read-only for producers") {
		t.Errorf("/health should count the failures and say why: %s", body)
	}
	if got := in.get("261207.5.0"); got != nil {
		t.Fatal("a row of a subject without a writable group arrived")
	}

	if err := e.cluster.Admin().UnMarkReadonly(ctx, "g1", subject); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "the rows are sent once the group takes the subject again", func() bool {
		for id := range rows {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
	testutil.Eventually(t, 10*time.Second, "/health clears the send error", func() bool {
		_, h, _ := w.health(t)
		return len(h.Databases) == 1 && h.Databases[0].LastSendError == ""
	})
}

// The metaserver is down (its TCP port, which meta.server.endpoint names
// directly, refuses connections) while rows are pending: the watchdog
// keeps running and leading, touches no row, says why in /health
// (degraded, metaserverError) and logs it once per round; once the
// metaserver is back it sends the rows, each once, and /health is ok.
func TestMetaserverDownRowsWait(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.metadown.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	meta := startTCPProxy(t, e.cluster.Meta().TCP())
	meta.stop()
	rows := map[string]int64{}
	for i := range 3 {
		id := fmt.Sprintf("261207.6.%d", i)
		rows[id] = db.insert(t, javaContent(id, subject, nil, nil))
	}
	s := e.settings()
	s.MetaEndpoint = meta.addr()
	w := e.start(t, "wd-a", s)
	testutil.Eventually(t, 30*time.Second, "/health says the metaserver cannot be reached", func() bool {
		code, h, _ := w.health(t)
		return code == 503 && h.Status == "degraded" && h.Role == "leader" && strings.Contains(h.MetaServer, meta.addr())
	})
	time.Sleep(2 * s.CheckInterval)
	_, _, body := w.health(t)
	t.Logf("/health while the metaserver is down: %s", strings.TrimSpace(body))
	for _, row := range rows {
		if st, errs, ok := db.row(t, row); !ok || st != 0 || errs != 0 {
			t.Fatalf("a row was touched while the metaserver was down: present %v, status %d, error %d", ok, st, errs)
		}
	}
	if n := w.logs.Count("cannot create the producer"); n == 0 {
		t.Error("the watchdog did not log that it cannot reach the metaserver")
	}

	meta.restart()
	testutil.Eventually(t, 60*time.Second, "the rows are sent once the metaserver is back", func() bool {
		for id := range rows {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	if code, h, body := w.health(t); code != 200 || h.Status != "ok" || h.MetaServer != "" {
		t.Errorf("/health after the metaserver came back: %d %s", code, body)
	}
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
}
