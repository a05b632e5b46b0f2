//go:build perf

package watchdog

// Figures, not checks: `make perf` runs them (-tags perf, TestPerf*).

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPerfRecovery measures the watchdog's recovery rate: rows orphaned
// in 10 MariaDB databases (QMQ_WD_PERF_ROWS per database, default 2,000;
// the target is 100,000 in all within 60 s), resent by one
// watchdog with the default watchdog.resend.rate (500 rows/s per
// database) and batch size (50), until every table is empty.
func TestPerfRecovery(t *testing.T) {
	perDB := 2000
	if v, err := strconv.Atoi(os.Getenv("QMQ_WD_PERF_ROWS")); err == nil && v > 0 {
		perDB = v
	}
	const dbs = 10
	e := startEnv(t)
	subject := fmt.Sprintf("wd.perf.%d", time.Now().UnixNano())
	var clients []testDB
	for range dbs {
		c := mariaClient(t)
		e.addDB(t, c.url, "root", "")
		clients = append(clients, c)
	}
	for d, c := range clients {
		for from := 0; from < perDB; from += 500 {
			n := min(500, perDB-from)
			var b strings.Builder
			args := make([]any, 0, n)
			b.WriteString("INSERT INTO " + c.table + " (content, create_time, update_time) VALUES ")
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?, NOW() - INTERVAL 2 MINUTE, NOW() - INTERVAL 2 MINUTE)")
				args = append(args, javaContent(fmt.Sprintf("261207.5.%d.%d", d, from+i), subject, []string{"perf"}, map[string]string{"i": strconv.Itoa(from + i)}))
			}
			if _, err := c.db.Exec(b.String(), args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := e.settings()
	s.CheckInterval = 200 * time.Millisecond
	s.TaskTimeout = 10 * time.Minute
	start := time.Now()
	e.start(t, "wd-perf", s)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		left := 0
		for _, c := range clients {
			left += c.count(t)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows left after 10 minutes", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	total := dbs * perDB
	t.Logf("resent %d rows from %d databases in %v: %.0f rows/s (watchdog.resend.rate %.0f per database, batch %d)",
		total, dbs, took.Round(time.Millisecond), float64(total)/took.Seconds(), s.RatePerDB, s.BatchSize)
}
