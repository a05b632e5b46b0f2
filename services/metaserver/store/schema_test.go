package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/schema"
)

// tableShape is what both schemas must agree on: the columns, in order, and
// the unique keys (as column lists, since SQLite names them itself).
type tableShape struct {
	Columns    []string
	UniqueKeys []string // "col1,col2", sorted
}

func mysqlShapes(t *testing.T, db *sql.DB) map[string]*tableShape {
	t.Helper()
	ctx := context.Background()
	shapes := map[string]*tableShape{}
	rows, err := db.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position`)
	must(t, err)
	for rows.Next() {
		var table, col string
		must(t, rows.Scan(&table, &col))
		if shapes[table] == nil {
			shapes[table] = &tableShape{}
		}
		shapes[table].Columns = append(shapes[table].Columns, col)
	}
	must(t, rows.Err())
	rows.Close()

	rows, err = db.QueryContext(ctx, `SELECT table_name, GROUP_CONCAT(column_name ORDER BY seq_in_index)
FROM information_schema.statistics
WHERE table_schema = DATABASE() AND non_unique = 0 AND index_name <> 'PRIMARY'
GROUP BY table_name, index_name`)
	must(t, err)
	for rows.Next() {
		var table, cols string
		must(t, rows.Scan(&table, &cols))
		shapes[table].UniqueKeys = append(shapes[table].UniqueKeys, cols)
	}
	must(t, rows.Err())
	rows.Close()
	for _, s := range shapes {
		sort.Strings(s.UniqueKeys)
	}
	return shapes
}

func sqliteShapes(t *testing.T, db *sql.DB) map[string]*tableShape {
	t.Helper()
	ctx := context.Background()
	var names []string
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	must(t, err)
	for rows.Next() {
		var n string
		must(t, rows.Scan(&n))
		names = append(names, n)
	}
	must(t, rows.Err())
	rows.Close()

	shapes := map[string]*tableShape{}
	for _, table := range names {
		s := &tableShape{}
		shapes[table] = s
		rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", table)
		must(t, err)
		for rows.Next() {
			var col string
			must(t, rows.Scan(&col))
			s.Columns = append(s.Columns, col)
		}
		must(t, rows.Err())
		rows.Close()

		rows, err = db.QueryContext(ctx, `SELECT il.name, ii.name FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii
WHERE il."unique" = 1 AND il.origin <> 'pk' ORDER BY il.name, ii.seqno`, table)
		must(t, err)
		keys := map[string][]string{}
		var order []string
		for rows.Next() {
			var idx, col string
			must(t, rows.Scan(&idx, &col))
			if keys[idx] == nil {
				order = append(order, idx)
			}
			keys[idx] = append(keys[idx], col)
		}
		must(t, rows.Err())
		rows.Close()
		for _, idx := range order {
			s.UniqueKeys = append(s.UniqueKeys, strings.Join(keys[idx], ","))
		}
		sort.Strings(s.UniqueKeys)
	}
	return shapes
}

func formatShapes(m map[string]*tableShape) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s(%s) unique %q\n", n, strings.Join(m[n].Columns, ", "), m[n].UniqueKeys)
	}
	return b.String()
}

// TestSchemasMatch checks that schema/init.sql and schema/init_sqlite.sql define the
// same tables, columns (in the same order) and unique keys.
func TestSchemasMatch(t *testing.T) {
	_, dsn := createTestDatabase(t, nil)
	my, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer my.Close()
	lite := openTestSQLite(t)

	m, l := formatShapes(mysqlShapes(t, my)), formatShapes(sqliteShapes(t, rawDB(lite)))
	if m != l {
		t.Fatalf("the schemas differ\nMySQL (schema/init.sql):\n%s\nSQLite (schema/init_sqlite.sql):\n%s", m, l)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(tables), oursTables...)))
	var got []string
	for n := range mysqlShapes(t, my) {
		got = append(got, n)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("schema tables %v, want %v", got, want)
	}
	t.Logf("both schemas:\n%s", m)
}

// qmqColumns is QMQ's schema (qmq-dist/sql/init.sql plus
// 001_add_ext_to_broker_group.sql) as information_schema describes it:
// table.column type nullable. Existing QMQ databases must work unchanged, so
// schema/init.sql must produce exactly these (integer display widths aside, which
// MySQL 8 no longer reports).
const qmqColumns = `
broker.id bigint unsigned NO
broker.group_name varchar(30) NO
broker.hostname varchar(50) NO
broker.ip int unsigned NO
broker.role int NO
broker.serve_port int NO
broker.sync_port int NO
broker.create_time timestamp NO
broker.update_time timestamp NO
broker_group.id int unsigned NO
broker_group.group_name varchar(30) NO
broker_group.kind int NO
broker_group.master_address varchar(25) NO
broker_group.broker_state tinyint NO
broker_group.tag varchar(30) NO
broker_group.create_time timestamp NO
broker_group.update_time timestamp NO
broker_group.ext text YES
client_meta_info.id int unsigned NO
client_meta_info.subject_info varchar(100) NO
client_meta_info.client_type tinyint NO
client_meta_info.consumer_group varchar(100) NO
client_meta_info.client_id varchar(100) NO
client_meta_info.app_code varchar(100) NO
client_meta_info.room varchar(20) NO
client_meta_info.create_time timestamp NO
client_meta_info.update_time timestamp NO
client_offline_state.id int unsigned NO
client_offline_state.client_id varchar(100) NO
client_offline_state.subject_info varchar(100) NO
client_offline_state.consumer_group varchar(100) NO
client_offline_state.state tinyint NO
datasource_config.id int unsigned NO
datasource_config.url varchar(128) NO
datasource_config.user_name varchar(100) NO
datasource_config.password varchar(100) NO
datasource_config.status tinyint NO
datasource_config.room varchar(20) NO
datasource_config.create_time timestamp NO
datasource_config.update_time timestamp NO
leader_election.id int unsigned NO
leader_election.name varchar(128) NO
leader_election.node varchar(128) NO
leader_election.last_seen_active bigint NO
readonly_broker_group_setting.id bigint unsigned NO
readonly_broker_group_setting.subject varchar(100) NO
readonly_broker_group_setting.broker_group varchar(20) NO
readonly_broker_group_setting.create_time timestamp NO
subject_info.id int unsigned NO
subject_info.name varchar(100) NO
subject_info.tag varchar(30) NO
subject_info.create_time timestamp NO
subject_info.update_time timestamp NO
subject_route.id int unsigned NO
subject_route.subject_info varchar(100) NO
subject_route.broker_group_json varchar(300) NO
subject_route.version int NO
subject_route.create_time timestamp NO
subject_route.update_time timestamp NO
`

// qmqUniqueKeys are QMQ's unique keys, by name as in its init.sql.
const qmqUniqueKeys = `
broker.uniq_broker hostname,serve_port
broker.uniq_group_role group_name,role
broker_group.uniq_group_name group_name
client_meta_info.uniq_subject_client_type_consumer_group_client_id subject_info,client_type,consumer_group,client_id
client_offline_state.uniq_client_id_subject_group client_id,subject_info,consumer_group
datasource_config.uniq_idx_name url
leader_election.uniq_idx_name name
readonly_broker_group_setting.uniq_subject_broker_group subject,broker_group
subject_info.uniq_name name
subject_route.uniq_subject subject_info
`

// TestMySQLSchemaMatchesQMQ checks schema/init.sql against QMQ's schema.
func TestMySQLSchemaMatchesQMQ(t *testing.T) {
	_, dsn := createTestDatabase(t, nil)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	width := regexp.MustCompile(`^((?:tiny|small|medium|big)?int)\(\d+\)`)

	var got []string
	rows, err := db.Query(`SELECT table_name, column_name, column_type, is_nullable FROM information_schema.columns
WHERE table_schema = DATABASE() AND table_name NOT IN ('broker_epoch') ORDER BY table_name, ordinal_position`)
	must(t, err)
	for rows.Next() {
		var table, col, typ, null string
		must(t, rows.Scan(&table, &col, &typ, &null))
		got = append(got, fmt.Sprintf("%s.%s %s %s", table, col, width.ReplaceAllString(strings.ToLower(typ), "$1"), null))
	}
	must(t, rows.Err())
	rows.Close()
	if g, w := strings.Join(got, "\n"), strings.TrimSpace(qmqColumns); g != w {
		t.Errorf("columns differ from QMQ's\n got:\n%s\nwant:\n%s", g, w)
	}

	got = nil
	rows, err = db.Query(`SELECT table_name, index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index)
FROM information_schema.statistics
WHERE table_schema = DATABASE() AND non_unique = 0 AND index_name <> 'PRIMARY' AND table_name NOT IN ('broker_epoch')
GROUP BY table_name, index_name ORDER BY table_name, index_name`)
	must(t, err)
	for rows.Next() {
		var table, idx, cols string
		must(t, rows.Scan(&table, &idx, &cols))
		got = append(got, fmt.Sprintf("%s.%s %s", table, idx, cols))
	}
	must(t, rows.Err())
	rows.Close()
	if g, w := strings.Join(got, "\n"), strings.TrimSpace(qmqUniqueKeys); g != w {
		t.Errorf("unique keys differ from QMQ's\n got:\n%s\nwant:\n%s", g, w)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment; with semicolon;\nCREATE TABLE a\n(\n  x INT -- trailing\n);\n\n  -- indented comment\nCREATE TABLE b (y INT);\nDROP TABLE c")
	want := []string{"CREATE TABLE a\n(\n  x INT -- trailing\n);", "CREATE TABLE b (y INT);", "DROP TABLE c"}
	if !slices.Equal(got, want) {
		t.Fatalf("splitStatements = %q, want %q", got, want)
	}
	if n := len(splitStatements(schema.SQLite)); n != len(tables)+len(oursTables)+1 { // + the index
		t.Errorf("schema/init_sqlite.sql has %d statements, want %d", n, len(tables)+len(oursTables)+1)
	}
}
