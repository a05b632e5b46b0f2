// Package testpostgres gives tests a PostgreSQL server and databases of
// their own: the server on the Unix socket /var/run/postgresql (port 5432)
// as user postgres with trust authentication, unless QMQ_TEST_POSTGRES_DSN
// names another (a pgx connection string without dbname, e.g.
// "host=db.example port=5432 user=qmq password=secret"). Tests fail, never
// skip, when the server cannot be reached: CI must not pass without having
// run them. For tests only.
package testpostgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// StartHint says how to start the server these machines have.
const StartHint = "start PostgreSQL: pg_ctlcluster 15 main start (or point QMQ_TEST_POSTGRES_DSN at a server)"

// ServerDSN is the test server's connection string, without dbname.
func ServerDSN() string {
	if dsn := os.Getenv("QMQ_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "host=/var/run/postgresql port=5432 user=postgres"
}

// open connects to database name and pings it, failing the test with
// StartHint when the server cannot be reached.
func open(t testing.TB, name string) *sql.DB {
	t.Helper()
	dsn := ServerDSN() + " dbname=" + name
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open PostgreSQL %q: %v", dsn, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("cannot reach the test PostgreSQL server (%s): %v\n%s", dsn, err, StartHint)
	}
	return db
}

// Database creates an empty database <prefix><random>, dropped when the
// test ends (after the returned pool is closed), and returns a pool
// connected to it and its connection string.
func Database(t testing.TB, prefix string) (db *sql.DB, dsn string) {
	t.Helper()
	admin := open(t, "postgres")
	b := make([]byte, 6)
	rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := admin.ExecContext(context.Background(), `CREATE DATABASE "`+name+`"`); err != nil {
		admin.Close()
		t.Fatalf("create test database %s: %v", name, err)
	}
	db = open(t, name)
	// Cleanups run last-registered first: close the pool, then drop.
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	t.Cleanup(func() { db.Close() })
	return db, ServerDSN() + " dbname=" + name
}
