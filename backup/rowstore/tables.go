package rowstore

import (
	"context"
	"time"
)

// Table names a table of rows: QMQ's HBase table names, and ours.
type Table string

const (
	Messages    Table = "qmq_backup"              // normal and retry index (QMQ)
	Records     Table = "qmq_backup_record"       // pull/ack and dead records (QMQ)
	Dead        Table = "qmq_backup_dead"         // dead-letter index (QMQ)
	DeadContent Table = "qmq_backup_dead_content" // dead-letter content (QMQ)
	Details     Table = "qmq_backup_detail"       // content by broker group and sequence (ours)
	IDIndex     Table = "qmq_backup_id"           // md5 of a message id → index (ours; only with Options.IDIndex)
	IDOrdered   Table = "qmq_backup_id_ordered"   // a message id as it is → index (ours; only with Options.IDIndex)
)

// QMQTables are the tables of an HBase installation: QMQ's four and
// qmq_backup_detail.
var QMQTables = []Table{Messages, Records, Dead, DeadContent, Details}

// Family is the column family of t, as QMQ's init_backup_hbase.sql creates
// it: "i" for the record table, "m" for the others.
func Family(t Table) string {
	if t == Records {
		return "i"
	}
	return "m"
}

// Qualifier is the column qualifier of t's one cell: "r" (records) for the
// record table, "c" (content) for the others, as QMQ.
func Qualifier(t Table) string {
	if t == Records {
		return "r"
	}
	return "c"
}

// Row is one cell to write.
type Row struct {
	Table      Table
	Key, Value []byte
	// Time is the row's time (a message's create time, a record's
	// timestamp); a store with a retention deletes the row after it.
	Time time.Time
}

// Scan is a range of rows to read in key order.
type Scan struct {
	Table Table
	// Start is the first key (inclusive), Stop the end (exclusive).
	Start, Stop []byte
	// Regexp, if not empty, keeps only the rows whose key matches it: a
	// QMQ key regexp (\d, \w, anchors), which HBase evaluates server-side
	// as a RowFilter with a RegexStringComparator.
	Regexp string
	// Batch is a hint of how many rows the caller will likely want.
	Batch int
}

// Tables is what a backend provides: atomic-enough puts (a failed Put may
// have written some rows; every row is idempotent), gets and scans.
// Implementations are safe for concurrent use and wrap backup.ErrUnavailable
// when their backend cannot be reached.
type Tables interface {
	Put(ctx context.Context, rows []Row) error
	// Get returns the value of key in t; ok is false if there is none.
	Get(ctx context.Context, t Table, key []byte) (value []byte, ok bool, err error)
	// Scan calls fn with each row of s in key order until fn returns false
	// or the rows run out. key and value are valid only during the call,
	// and fn must not call the backend (it may hold a lock for the scan).
	Scan(ctx context.Context, s Scan, fn func(key, value []byte) bool) error
	// Sync makes every Put that returned durable (backup.Store.Sync).
	Sync(ctx context.Context) error
	Close() error
}
