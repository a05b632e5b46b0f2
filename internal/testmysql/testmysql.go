package testmysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// StartHint says how to start the server these machines have.
const StartHint = "start MariaDB: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd (or point QMQ_TEST_MYSQL_DSN at a server)"

// ServerConfig is the test server's DSN, without a database.
func ServerConfig(t testing.TB) *mysql.Config {
	t.Helper()
	dsn := os.Getenv("QMQ_TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/"
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("QMQ_TEST_MYSQL_DSN %q: %v", dsn, err)
	}
	cfg.DBName = ""
	return cfg
}

// Admin connects to the test server without selecting a database, failing
// the test with StartHint when it cannot be reached.
func Admin(t testing.TB) (*sql.DB, *mysql.Config) {
	t.Helper()
	cfg := ServerConfig(t)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("cannot reach the test MySQL/MariaDB server at %s: %v\n%s", cfg.Addr, err, StartHint)
	}
	return db, cfg
}

// Database creates an empty database <prefix><random> (utf8mb4), dropped
// when the test ends, and returns its name and a DSN for it.
func Database(t testing.TB, prefix string) (name, dsn string) {
	t.Helper()
	admin, cfg := Admin(t)
	b := make([]byte, 6)
	rand.Read(b)
	name = prefix + hex.EncodeToString(b)
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg = cfg.Clone()
	cfg.DBName = name
	return name, cfg.FormatDSN()
}
