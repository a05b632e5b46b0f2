package tx

import (
	"context"
	"database/sql"
	"regexp"
	"strings"
	"testing"
)

// qmqClientColumns is QMQ's qmq_msg_queue (qmq-dist/sql/init_client.sql)
// as MariaDB's information_schema describes it: column, type, nullable,
// default, extra. Tables created for QMQ's Java client must work
// unchanged, so schema/init_client.sql must give exactly these (integer
// display widths aside, which MySQL 8 no longer reports).
const qmqClientColumns = `
id bigint NO NULL auto_increment
content longtext NO NULL
status smallint NO 0
error int unsigned NO 0
create_time datetime NO NULL
update_time timestamp NO current_timestamp() on update current_timestamp()
`

func TestMySQLTableMatchesQMQ(t *testing.T) {
	d := mariaDB(t)
	db := strings.TrimSuffix(d.table, ".qmq_msg_queue")
	rows, err := d.db.QueryContext(context.Background(), `SELECT column_name, column_type, is_nullable, column_default, extra
		FROM information_schema.columns WHERE table_schema = ? AND table_name = 'qmq_msg_queue' ORDER BY ordinal_position`, db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	width := regexp.MustCompile(`^((?:tiny|small|medium|big)?int)\(\d+\)`)
	var got strings.Builder
	got.WriteString("\n")
	for rows.Next() {
		var name, typ, nullable, extra string
		var def sql.NullString
		if err := rows.Scan(&name, &typ, &nullable, &def, &extra); err != nil {
			t.Fatal(err)
		}
		typ = width.ReplaceAllString(typ, "$1")
		dv := "NULL"
		if def.Valid {
			dv = strings.Trim(def.String, "'")
		}
		extra = strings.ToLower(strings.TrimSpace(extra))
		line := strings.TrimSpace(strings.Join([]string{name, typ, nullable, dv, extra}, " "))
		got.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got.String() != qmqClientColumns {
		t.Fatalf("schema/init_client.sql gives\n%s\nQMQ's table is\n%s", got.String(), qmqClientColumns)
	}
	var key string
	if err := d.db.QueryRow(`SELECT GROUP_CONCAT(column_name) FROM information_schema.key_column_usage
		WHERE table_schema = ? AND table_name = 'qmq_msg_queue' AND constraint_name = 'PRIMARY'`, db).Scan(&key); err != nil || key != "id" {
		t.Fatalf("primary key %q (%v), want id", key, err)
	}
}

// TestPostgresTableTouchesUpdateTime checks the trigger that stands in for
// MySQL's ON UPDATE CURRENT_TIMESTAMP, which QMQ's watchdog relies on.
func TestPostgresTableTouchesUpdateTime(t *testing.T) {
	d := postgresDB(t)
	var id int64
	if err := d.db.QueryRow("INSERT INTO " + d.table + " (content, create_time, update_time) VALUES ('{}', now(), now() - interval '1 hour') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.db.Exec("UPDATE "+d.table+" SET status = -1 WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	var age float64
	if err := d.db.QueryRow("SELECT EXTRACT(EPOCH FROM now() - update_time) FROM "+d.table+" WHERE id = $1", id).Scan(&age); err != nil {
		t.Fatal(err)
	}
	if age > 60 {
		t.Fatalf("update_time is %.0f s old after an UPDATE: the trigger did not set it", age)
	}
}
