package dic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Table is QMQ's dictionary table (DefaultBackupConfig.DEFAULT_DB_DIC_TABLE).
const Table = "qmq_dic"

// Dialect is the SQL database a SQL dictionary runs on.
type Dialect string

const (
	MySQL  Dialect = "mysql" // MySQL or MariaDB
	SQLite Dialect = "sqlite"
)

// sqlBackend runs QMQ's DbDicDao statements, with its column names.
type sqlBackend struct {
	db      *sql.DB
	dialect Dialect
}

// NewSQL is a Dictionary on table qmq_dic of db, which must exist with the
// columns of schema/init_backup.sql (MySQL) or init_backup_sqlite.sql
// (SQLite; OpenSQLite creates it). Check it with CheckTable at start-up.
func NewSQL(db *sql.DB, dialect Dialect, where string) (Dictionary, error) {
	if dialect != MySQL && dialect != SQLite {
		return nil, fmt.Errorf("dictionary dialect %q: want %q or %q", dialect, MySQL, SQLite)
	}
	return newCached(&sqlBackend{db: db, dialect: dialect}, Table+" in "+where), nil
}

// CheckTable reports, with what to do, when db has no usable qmq_dic: the
// table is missing, or has QMQ's schema without the name_id column its DAO
// queries.
func CheckTable(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "SELECT name_id, name FROM "+Table+" WHERE 1=0")
	if err != nil {
		return fmt.Errorf("table %s cannot be read as the backup needs it (columns name_id, name): %w; create it with schema/init_backup.sql, or add name_id to a table made by QMQ's init_backup.sql as that file's comment says", Table, err)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	// A name column narrower than the longest name would, in MySQL's
	// non-strict mode, store a truncated name under an id: rows keyed by it
	// would be orphaned at the next start. Refuse it up front, with the fix.
	var width sql.NullInt64
	err = db.QueryRowContext(ctx, "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'name'", Table).Scan(&width)
	if err != nil {
		return fmt.Errorf("read the width of %s.name from information_schema: %w", Table, err)
	}
	if width.Valid && width.Int64 < int64(MaxPrefixedNameLen) {
		return fmt.Errorf("%s.name holds %d characters; the backup needs %d (\"%%DEAD_RETRY%%\" + a 100-character subject): ALTER TABLE %s MODIFY name VARCHAR(%d) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' (schema/init_backup.sql)", Table, width.Int64, MaxPrefixedNameLen, Table, MaxPrefixedNameLen)
	}
	return nil
}

func (b *sqlBackend) idOf(ctx context.Context, name string) (int, bool, error) {
	var id int
	err := b.db.QueryRowContext(ctx, "SELECT name_id FROM "+Table+" WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

func (b *sqlBackend) nameOf(ctx context.Context, id int) (string, bool, error) {
	var name string
	err := b.db.QueryRowContext(ctx, "SELECT name FROM "+Table+" WHERE name_id = ?", id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return name, err == nil, err
}

func (b *sqlBackend) insert(ctx context.Context, id int, name string) (bool, error) {
	_, err := b.db.ExecContext(ctx, "INSERT INTO "+Table+"(name_id, name) VALUES(?, ?)", id, name)
	if err == nil {
		return false, nil
	}
	if isDuplicate(err) {
		return true, nil
	}
	return false, err
}

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062 // ER_DUP_ENTRY
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return false
}

// SQLiteSchema is schema/init_backup_sqlite.sql (a test keeps them equal).
const SQLiteSchema = `CREATE TABLE IF NOT EXISTS qmq_dic
(
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name_id INTEGER NOT NULL,
    name    TEXT    NOT NULL DEFAULT '',
    CONSTRAINT uniq_idx_name_id UNIQUE (name_id),
    CONSTRAINT uniq_idx_name UNIQUE (name)
);`

// OpenSQLite opens the SQLite database at path (the metaserver's embedded
// one, or a file of the backup's own), in WAL mode with a busy timeout so
// that it shares the file with the metaserver, and creates qmq_dic in it.
// The caller closes the returned database.
func OpenSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open the dictionary's SQLite database: path %q is empty or contains '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open the dictionary's SQLite database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open the dictionary's SQLite database %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, SQLiteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create %s in SQLite database %s: %w", Table, path, err)
	}
	return db, nil
}
