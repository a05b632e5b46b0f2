package watchdog

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// A row left by an application that died after its commit, written as
// QMQ's Java client writes it, is resent from MariaDB and PostgreSQL,
// consumed with its properties and tags, and its row deleted.
func TestResendsRowsOfDeadApplication(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.e2e.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	maria, pg := mariaClient(t), postgresClient(t)
	e.addDB(t, maria.url, "root", "")
	e.addDB(t, pg.url, "postgres", "")

	type sent struct {
		db    testDB
		row   int64
		id    string
		tags  []string
		attrs map[string]string
	}
	var all []sent
	for i, db := range []testDB{maria, pg} {
		for j := range 3 {
			s := sent{db: db, id: fmt.Sprintf("261207.120000.10.0.0.1.%d.%d", i, j), tags: []string{"paid", fmt.Sprintf("t%d", j)},
				attrs: map[string]string{"order": fmt.Sprint(1000 + j), "note": "é ünïcode \"quoted\"", "amount": "12.50"}}
			s.row = db.insert(t, javaContent(s.id, subject, s.tags, s.attrs))
			all = append(all, s)
		}
	}
	w := e.start(t, "wd-a", e.settings())
	testutil.Eventually(t, 30*time.Second, "every row's message is consumed", func() bool {
		for _, s := range all {
			if in.get(s.id) == nil {
				return false
			}
		}
		return true
	})
	for _, s := range all {
		m := in.get(s.id)
		for k, v := range s.attrs {
			if got := m.Property(k); got != v {
				t.Errorf("%s: property %s = %q, sent %q", s.id, k, got, v)
			}
		}
		if got := m.Property("qmq_appCode"); got != "java-app" {
			t.Errorf("%s: qmq_appCode = %q, want the application's java-app", s.id, got)
		}
		if got, want := strings.Join(m.Tags(), ","), strings.Join(s.tags, ","); got != want {
			t.Errorf("%s: tags %q, sent %q", s.id, got, want)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every row is deleted", func() bool { return maria.count(t) == 0 && pg.count(t) == 0 })
	if !w.Leading() {
		t.Error("the only watchdog does not lead")
	}
	code, body := w.get(t, "/health")
	if code != 200 || !strings.Contains(body, `"role":"leader"`) || !strings.Contains(body, maria.url) || strings.Count(body, `"state":"ok"`) != 2 {
		t.Errorf("/health: %d %s", code, body)
	}
	_, metrics := w.get(t, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`qmq_watchdog_resent_total{db=%q} 3`, maria.url),
		fmt.Sprintf(`qmq_watchdog_resent_total{db=%q} 3`, pg.url),
		"qmq_watchdog_leader 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
}

// Rows that cannot be sent are marked -2 (QMQ's VALID_ERROR), reported,
// and kept; the good row beside them is sent.
func TestGarbageRowsAreMarkedNotDeleted(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.garbage.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	bad := map[string]int64{
		"not json":      db.insert(t, "this is not json"),
		"no subject":    db.insert(t, `{"messageId":"x1","attrs":{}}`),
		"placeholder":   db.insert(t, javaContent("261207.1.x2", "order.${env}", nil, nil)),
		"empty":         db.insert(t, ""),
		"illegal name":  db.insert(t, javaContent("261207.1.x3", "has space", nil, nil)),
		"object attr":   db.insert(t, `{"messageId":"x4","subject":"`+subject+`","attrs":{"k":{"a":1}}}`),
		"failed 1000 x": 0,
	}
	tooMany := db.insert(t, javaContent("261207.1.x5", subject, nil, nil))
	if _, err := db.db.Exec("UPDATE "+db.table+" SET error = 1000, update_time = NOW() - INTERVAL 2 MINUTE WHERE id = ?", tooMany); err != nil {
		t.Fatal(err)
	}
	bad["failed 1000 x"] = tooMany
	good := db.insert(t, javaContent("261207.1.good", subject, []string{"x"}, map[string]string{"k": "v"}))

	w := e.start(t, "wd-a", e.settings())
	testutil.Eventually(t, 30*time.Second, "the good row is sent and deleted", func() bool {
		_, _, ok := db.row(t, good)
		return in.get("261207.1.good") != nil && !ok
	})
	testutil.Eventually(t, 10*time.Second, "every bad row is marked -2", func() bool {
		for _, id := range bad {
			if st, _, ok := db.row(t, id); !ok || st != statusInvalid {
				return false
			}
		}
		return true
	})
	for what, id := range bad {
		if st, _, ok := db.row(t, id); !ok || st != statusInvalid {
			t.Errorf("%s: row %d: status %d, present %v; want kept with status -2", what, id, st, ok)
		}
	}
	if n := w.logs.Count("row cannot be sent"); n != len(bad) {
		t.Errorf("%d 'row cannot be sent' lines, want one per bad row (%d):\n%s", n, len(bad), w.logs)
	}
	_, metrics := w.get(t, "/metrics")
	if want := fmt.Sprintf(`qmq_watchdog_marked_total{db=%q,status="-2"} %d`, db.url, len(bad)); !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	time.Sleep(time.Second) // a few more rounds: marked rows are not read again
	if n := w.logs.Count("row cannot be sent"); n != len(bad) {
		t.Errorf("marked rows were reported again: %d lines", n)
	}
}

// A client database that is down is skipped with one log line per round
// naming its url, never its password; the others are served.
func TestDownDatabaseIsSkippedOthersServed(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.down.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	const password = "s3cret-Pa55word"
	down := "mmm://127.0.0.1:1/nothere"
	e.addDB(t, down, "app", password)
	e.addDB(t, "postgresql://127.0.0.1:1/nothere", "app", password)
	refused := "mmm://127.0.0.1:3306/qmq_produce" // a live server refusing the login
	e.addDB(t, refused, "root", password)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	s := e.settings()
	s.CheckInterval = 500 * time.Millisecond
	w := e.start(t, "wd-a", s)
	start := time.Now()
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = fmt.Sprintf("261207.2.%d", i)
		db.insert(t, javaContent(ids[i], subject, nil, nil))
	}
	testutil.Eventually(t, 30*time.Second, "the working database's rows arrive", func() bool {
		for _, id := range ids {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	time.Sleep(2 * time.Second)
	rounds := time.Since(start) / s.CheckInterval
	logs := w.logs.String()
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "client database skipped") && strings.Contains(line, down) {
			n++
		}
	}
	if n < 2 || time.Duration(n) > rounds+1 {
		t.Errorf("%d 'skipped' lines for %s in %d rounds; want one per round", n, down, rounds)
	}
	_, health := w.get(t, "/health")
	_, metrics := w.get(t, "/metrics")
	for what, text := range map[string]string{"logs": logs, "/health": health, "/metrics": metrics} {
		if strings.Contains(text, password) {
			t.Errorf("the password appears in %s", what)
		}
	}
	if w.logs.Count("Access denied") == 0 {
		t.Errorf("no log line says %s refused the login", refused)
	}
	if !strings.Contains(health, `"state":"failing"`) || !strings.Contains(health, down) {
		t.Errorf("/health does not report %s failing: %s", down, health)
	}
	if want := fmt.Sprintf(`qmq_watchdog_db_up{db=%q} 0`, down); !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// While no broker takes the messages, rows stay with their error count
// raised (status 0, never deleted); once the broker is back, the next
// rounds send them.
func TestFailedSendsRaiseErrorAndAreRetried(t *testing.T) {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.retry.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	master := e.cluster.Groups()[0].Master
	master.Stop()
	ids := map[string]int64{}
	for i := range 3 {
		id := fmt.Sprintf("261207.4.%d", i)
		ids[id] = db.insert(t, javaContent(id, subject, nil, nil))
	}
	s := e.settings()
	s.SendTimeout = 300 * time.Millisecond
	w := e.start(t, "wd-a", s)
	testutil.Eventually(t, 30*time.Second, "the failed sends raise error", func() bool {
		for _, row := range ids {
			if st, errs, ok := db.row(t, row); !ok || st != 0 || errs == 0 {
				return false
			}
		}
		return true
	})
	// Failed rows are touched (update_time), so they wait checkInterval.
	_, metrics := w.get(t, "/metrics")
	if !strings.Contains(metrics, fmt.Sprintf(`qmq_watchdog_failed_total{db=%q}`, db.url)) {
		t.Errorf("/metrics lacks the failures of %s", db.url)
	}
	master.Start()
	e.cluster.Groups()[0].WaitOnline()
	testutil.Eventually(t, 60*time.Second, "the rows are sent once the broker is back", func() bool {
		for id := range ids {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
}
