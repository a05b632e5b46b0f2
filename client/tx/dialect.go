package tx

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Dialect is the SQL dialect of the application's database.
type Dialect int

const (
	// MySQL is MySQL 5.7+/8.x or MariaDB 10.3+ through
	// github.com/go-sql-driver/mysql; the table is schema/init_client.sql.
	MySQL Dialect = iota
	// PostgreSQL is PostgreSQL 12+ through pgx's database/sql driver
	// (github.com/jackc/pgx/v5/stdlib); the table is
	// schema/init_client_postgres.sql.
	PostgreSQL
)

func (d Dialect) String() string {
	switch d {
	case MySQL:
		return "MySQL"
	case PostgreSQL:
		return "PostgreSQL"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// DefaultTable is QMQ's table: database qmq_produce on MySQL, schema
// qmq_produce of the application's database on PostgreSQL.
const DefaultTable = "qmq_produce.qmq_msg_queue"

// Row states of the status column, as QMQ's client and watchdog use them.
const (
	// StatusPending: to be sent; the only state QMQ's watchdog resends.
	StatusPending = 0
	// StatusBlocked: a broker refused the message (BLOCK: the application
	// may not send to the subject); QMQ's DefaultSqlStatementProvider
	// writes -100 and the watchdog leaves such rows alone.
	StatusBlocked = -100
)

// tableName is a table name, optionally qualified by a database (MySQL) or
// schema (PostgreSQL): plain identifiers only, since it is pasted into SQL.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// statements are the SQL the sender runs, for one dialect and table.
type statements struct {
	dialect Dialect
	insert  string // (content) -> id; create_time/update_time from the database clock
	block   string // (id): status=-100, error+1, as QMQ's BLOCK statement
	failed  string // (id): error+1 and update_time, status unchanged
	table   string
}

// newStatements checks the table name and builds the statements. Times
// come from the database's clock (CURRENT_TIMESTAMP) rather than the
// application's: QMQ's watchdog compares update_time with "now minus a
// minute", and one clock for writing and reading keeps that comparison
// meaningful whatever the application's time zone.
func newStatements(d Dialect, table string) (statements, error) {
	if table == "" {
		table = DefaultTable
	}
	if !tableName.MatchString(table) {
		return statements{}, fmt.Errorf("qmq tx: table name %q is not an identifier or db.identifier (letters, digits, _ and $ only)", table)
	}
	s := statements{dialect: d, table: table}
	switch d {
	case MySQL:
		s.insert = "INSERT INTO " + table + " (content, create_time) VALUES (?, CURRENT_TIMESTAMP)"
		s.block = "UPDATE " + table + " SET status=-100, error=error+1, update_time=CURRENT_TIMESTAMP WHERE id=?"
		s.failed = "UPDATE " + table + " SET error=error+1, update_time=CURRENT_TIMESTAMP WHERE id=?"
	case PostgreSQL:
		s.insert = "INSERT INTO " + table + " (content, create_time) VALUES ($1, CURRENT_TIMESTAMP) RETURNING id"
		s.block = "UPDATE " + table + " SET status=-100, error=error+1, update_time=CURRENT_TIMESTAMP WHERE id=$1"
		s.failed = "UPDATE " + table + " SET error=error+1, update_time=CURRENT_TIMESTAMP WHERE id=$1"
	default:
		return statements{}, fmt.Errorf("qmq tx: unknown dialect %v (use tx.MySQL or tx.PostgreSQL)", d)
	}
	return s, nil
}

// deleteIDs is the DELETE of sent rows, n ids at once.
func (s statements) deleteIDs(n int) string {
	var b strings.Builder
	b.WriteString("DELETE FROM " + s.table + " WHERE id IN (")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if s.dialect == PostgreSQL {
			b.WriteString("$" + strconv.Itoa(i+1))
		} else {
			b.WriteByte('?')
		}
	}
	b.WriteByte(')')
	return b.String()
}
