package tx

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testpostgres"
	"github.com/qmq-go/qmq/schema"
)

// testDB is a database of the test's own with the message table, created
// from the schema files.
type testDB struct {
	name    string
	dialect Dialect
	db      *sql.DB
	table   string
	ph      string // placeholder of the first argument
}

// mariaDB creates a database standing in for qmq_produce: init_client.sql
// with the database renamed. Business tables go in the same database.
func mariaDB(t testing.TB) testDB {
	t.Helper()
	name, dsn := testmysql.Database(t, "qmqtx_")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ParseTime = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	for _, stmt := range splitStatements(strings.ReplaceAll(schema.ClientMySQL, "qmq_produce", name)) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("apply init_client.sql: %v\n%s", err, stmt)
		}
	}
	return testDB{name: "MariaDB", dialect: MySQL, db: db, table: name + ".qmq_msg_queue", ph: "?"}
}

// postgresDB creates a database and applies init_client_postgres.sql as
// is (schema qmq_produce).
func postgresDB(t testing.TB) testDB {
	t.Helper()
	db, _ := testpostgres.Database(t, "qmqtx_")
	if _, err := db.Exec(schema.ClientPostgres); err != nil {
		t.Fatalf("apply init_client_postgres.sql: %v", err)
	}
	return testDB{name: "PostgreSQL", dialect: PostgreSQL, db: db, table: DefaultTable, ph: "$1"}
}

// splitStatements splits a schema file at ';' at line ends, dropping
// comment-only pieces.
func splitStatements(text string) []string {
	var out []string
	for _, piece := range strings.Split(text, ";\n") {
		var code []string
		for _, line := range strings.Split(piece, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
				code = append(code, line)
			}
		}
		if len(code) > 0 {
			out = append(out, strings.TrimSuffix(strings.Join(code, "\n"), ";"))
		}
	}
	return out
}

// rowState is a message row as the tests look at it.
type rowState struct {
	id            int64
	content       string
	status, error int
}

func (d testDB) rows(t testing.TB) []rowState {
	t.Helper()
	rs, err := d.db.QueryContext(context.Background(), "SELECT id, content, status, error FROM "+d.table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []rowState
	for rs.Next() {
		var r rowState
		if err := rs.Scan(&r.id, &r.content, &r.status, &r.error); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// business creates a business table in the test database.
func (d testDB) business(t testing.TB) string {
	t.Helper()
	ddl := "CREATE TABLE orders (id BIGINT PRIMARY KEY, state VARCHAR(20) NOT NULL)"
	name := "orders"
	if d.dialect == MySQL {
		name = strings.TrimSuffix(d.table, ".qmq_msg_queue") + ".orders"
		ddl = "CREATE TABLE " + name + " (id BIGINT PRIMARY KEY, state VARCHAR(20) NOT NULL) ENGINE=InnoDB"
	}
	if _, err := d.db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	return name
}
