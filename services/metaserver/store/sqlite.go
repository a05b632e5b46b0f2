package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/qmq-go/qmq/schema"
)

// OpenSQLite opens (creating it and its parent directory if needed) the
// embedded database at path and applies schema/init_sqlite.sql, which is
// idempotent. The database is in WAL mode with a busy timeout of 10 s.
//
// The pool has a single connection (SetMaxOpenConns(1)): SQLite allows one
// writer at a time anyway and the metaserver's load is small, so serializing
// every statement in the process costs nothing measurable, while it rules out
// SQLITE_BUSY between our own connections and makes every transaction
// (ReplaceBroker, the optimistic route update) trivially atomic. WAL still lets
// other processes (the sqlite3 shell, backups) read while we write.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open SQLite: empty database path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open SQLite %s: the path must not contain '?'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open SQLite %s: %w", path, err)
		}
	}
	// The pragmas are in the DSN so that they apply to every connection the
	// pool opens, including one reopened after an error. _txlock=immediate
	// takes the write lock at BEGIN, so a transaction that reads then writes
	// waits (busy_timeout) instead of failing when another process writes.
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &sqlStore{db: db, d: sqliteDialect, where: "sqlite " + path}
	if err := applySQLiteSchema(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return s, nil
}

// applySQLiteSchema runs init_sqlite.sql in one transaction.
func applySQLiteSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range splitStatements(schema.SQLite) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("apply schema: %w (statement: %.60s...)", err, stmt)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	return nil
}

// splitStatements splits a schema file into statements: a statement ends with
// a line ending in ';'; lines starting with "--" are comments. Both schema
// files are written so that this is enough.
func splitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}
