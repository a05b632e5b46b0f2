package watchdog

import (
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/client/tx"
)

// Row states the watchdog writes (QMQ's values; tx.StatusBlocked is -100).
const (
	// statusInvalid: the row cannot be sent as it is (content that does
	// not parse, no subject, a subject with an unresolved "${", or failed
	// watchdog.max.errors times). QMQ's VALID_ERROR.
	statusInvalid = -2
)

// statements are the SQL run on one client database.
type statements struct {
	// due: (cursor id, age in ms, limit) -> id, content, error of rows
	// with status 0 untouched for longer than the age, after the cursor.
	due     string
	pending string // -> COUNT(*) of status 0 rows
	mark    string // (status, id): status, error+1, update_time
	failed  string // (id): error+1, update_time (the row is tried again next round)
	del     func(n int) string
}

func newStatements(d tx.Dialect, table string) statements {
	ph := func(i int) string { return "?" }
	age := "NOW(3) - INTERVAL (? * 1000) MICROSECOND"
	if d == tx.PostgreSQL {
		ph = func(i int) string { return "$" + strconv.Itoa(i) }
		age = "CURRENT_TIMESTAMP - $2 * INTERVAL '1 millisecond'"
	}
	return statements{
		due: "SELECT id, content, error FROM " + table + " WHERE status = 0 AND id > " + ph(1) +
			" AND update_time < " + age + " ORDER BY id LIMIT " + ph(3),
		pending: "SELECT COUNT(*) FROM " + table + " WHERE status = 0",
		mark:    "UPDATE " + table + " SET status = " + ph(1) + ", error = error + 1, update_time = CURRENT_TIMESTAMP WHERE id = " + ph(2),
		failed:  "UPDATE " + table + " SET error = error + 1, update_time = CURRENT_TIMESTAMP WHERE id = " + ph(1),
		del: func(n int) string {
			var b strings.Builder
			b.WriteString("DELETE FROM " + table + " WHERE id IN (")
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(ph(i + 1))
			}
			b.WriteByte(')')
			return b.String()
		},
	}
}
