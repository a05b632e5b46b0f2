package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything the SQL text or the driver handling differs in between
// MySQL and SQLite. The statements themselves are shared (sqlstore.go).
type dialect struct {
	name string // "mysql" or "sqlite", for messages

	// ignoreDup is appended to an INSERT so that a unique-key conflict leaves
	// the existing row alone and is not an error (QMQ's INSERT IGNORE).
	//
	// MySQL: "ON DUPLICATE KEY UPDATE id = id" rather than INSERT IGNORE,
	// because INSERT IGNORE also turns data errors (too long, out of range)
	// into warnings and silently truncates. SQLite: "ON CONFLICT DO NOTHING"
	// rather than INSERT OR IGNORE, which would also swallow NOT NULL and
	// CHECK violations.
	ignoreDup string

	// upsert returns the clause appended to an INSERT that updates setCols
	// (from the inserted values) when the row of unique key keyCols exists.
	upsert func(keyCols, setCols []string) string

	// forUpdate is appended to a SELECT inside a transaction to lock the rows
	// read (SQLite locks the whole database at BEGIN IMMEDIATE instead).
	forUpdate string

	// timeArg turns a time into a statement argument for a time column; the
	// time is already in UTC and truncated to seconds (see dbTime).
	timeArg func(t time.Time) any

	// isDuplicate reports whether err is a unique-key violation.
	isDuplicate func(err error) bool
}

var mysqlDialect = dialect{
	name:      "mysql",
	ignoreDup: "ON DUPLICATE KEY UPDATE id = id",
	upsert: func(keyCols, setCols []string) string {
		set := make([]string, len(setCols))
		for i, c := range setCols {
			// VALUES(c) is deprecated in MySQL 8.0.20+ (still works), while
			// the replacement "AS new" alias does not exist in MariaDB.
			set[i] = c + " = VALUES(" + c + ")"
		}
		return "ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
	},
	forUpdate: " FOR UPDATE",
	// The driver formats a time.Time in the connection's Loc, which OpenMySQL
	// forces to UTC, and the session's time_zone is '+00:00'.
	timeArg: func(t time.Time) any { return t },
	isDuplicate: func(err error) bool {
		var me *mysql.MySQLError
		return errors.As(err, &me) && me.Number == 1062 // ER_DUP_ENTRY
	},
}

var sqliteDialect = dialect{
	name:      "sqlite",
	ignoreDup: "ON CONFLICT DO NOTHING",
	upsert: func(keyCols, setCols []string) string {
		set := make([]string, len(setCols))
		for i, c := range setCols {
			set[i] = c + " = excluded." + c
		}
		return "ON CONFLICT (" + strings.Join(keyCols, ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
	},
	forUpdate: "",
	// Stored as text in the format of SQLite's own CURRENT_TIMESTAMP, which
	// sorts and compares chronologically.
	timeArg: func(t time.Time) any { return t.Format(sqliteTimeLayout) },
	isDuplicate: func(err error) bool {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return false
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
		return false
	},
}

// sqliteTimeLayout is how times are stored in SQLite: UTC, whole seconds.
const sqliteTimeLayout = "2006-01-02 15:04:05"

// dbTime is the time as stored: UTC, truncated to whole seconds, which is the
// precision of MySQL's TIMESTAMP (MySQL would round, MariaDB truncate; doing it
// here makes both backends and SQLite agree). A zero time means now.
func dbTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Second)
}

// dup wraps a unique-key violation so that errors.Is(err, ErrDuplicate) holds
// while the driver's message (naming the key) is kept.
func (d dialect) dup(err error) error {
	if err != nil && d.isDuplicate(err) {
		return fmt.Errorf("%w: %w", ErrDuplicate, err)
	}
	return err
}

// timeScanner scans a time column of either backend into a UTC time.Time:
// MySQL (parseTime=true) yields time.Time, SQLite yields the stored text.
type timeScanner struct{ t *time.Time }

var _ sql.Scanner = timeScanner{}

func (s timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.t = time.Time{}
		return nil
	case time.Time:
		*s.t = v.UTC()
		return nil
	case []byte:
		return s.parse(string(v))
	case string:
		return s.parse(v)
	}
	return fmt.Errorf("cannot scan %T into a time", src)
}

// timeLayouts are the text forms accepted when reading: ours first, then forms
// other writers (the sqlite3 shell, older drivers) may have used. Text without
// a zone is UTC.
var timeLayouts = []string{
	sqliteTimeLayout,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999-07:00",
	time.RFC3339Nano,
}

func (s timeScanner) parse(v string) error {
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			*s.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("cannot parse time %q (want %q, UTC)", v, sqliteTimeLayout)
}
