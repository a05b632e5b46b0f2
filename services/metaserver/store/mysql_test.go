package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/schema"

	"github.com/qmq-go/qmq/internal/testmysql"
)

// The MySQL tests need a server; see internal/testmysql (they fail, never
// skip, when it cannot be reached).

// createTestDatabase creates an empty database qmq_test_<random>, dropped when
// the test ends, runs the statements of schema/init.sql for which apply returns
// true (nil: all) and returns the database's name and a DSN for it.
func createTestDatabase(t *testing.T, apply func(stmt string) bool) (name, dsn string) {
	t.Helper()
	ctx := context.Background()
	name, dsn = testmysql.Database(t, "qmq_test_")

	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, stmt := range splitStatements(schema.MySQL) {
		if apply != nil && !apply(stmt) {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("apply schema/init.sql to %s: %v\nstatement:\n%s", name, err, stmt)
		}
	}
	return name, dsn
}

func openTestMySQL(t *testing.T) Store {
	t.Helper()
	_, dsn := createTestDatabase(t, nil)
	s, err := OpenMySQL(context.Background(), dsn, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMySQLStore(t *testing.T) {
	testmysql.Admin(t) // one failure with the hint, not one per subtest, if the server is down
	runStoreSuite(t, openTestMySQL)
}

func TestMySQLSchemaIsIdempotent(t *testing.T) {
	name, dsn := createTestDatabase(t, nil)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range splitStatements(schema.MySQL) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("applying schema/init.sql twice to %s: %v", name, err)
		}
	}
	if n := len(splitStatements(schema.MySQL)); n != len(tables)+len(oursTables) {
		t.Errorf("schema/init.sql has %d statements, want one per table (%d)", n, len(tables)+len(oursTables))
	}
}

func TestOpenMySQLMissingTables(t *testing.T) {
	ctx := context.Background()
	// Only some tables.
	name, dsn := createTestDatabase(t, func(stmt string) bool {
		for _, table := range []string{"subject_info", "subject_route", "leader_election"} {
			if strings.HasPrefix(stmt, "CREATE TABLE IF NOT EXISTS `"+table+"`") {
				return true
			}
		}
		return false
	})
	_, err := OpenMySQL(ctx, dsn, 2)
	if err == nil {
		t.Fatal("OpenMySQL succeeded on a database lacking tables")
	}
	cfg := testmysql.ServerConfig(t)
	host, _, _ := strings.Cut(cfg.Addr, ":")
	want := fmt.Sprintf("database %s lacks tables broker, broker_group, client_meta_info, client_offline_state, datasource_config, readonly_broker_group_setting: apply the schema with `mysql -h%s", name, host)
	if !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), name+" < schema/init.sql`") {
		t.Fatalf("error:\n%v\nwant it to contain:\n%s\nand end with %q", err, want, name+" < schema/init.sql`")
	}
	t.Log(err)

	// No tables at all.
	name, dsn = createTestDatabase(t, func(string) bool { return false })
	_, err = OpenMySQL(ctx, dsn, 2)
	if err == nil || !strings.Contains(err.Error(), "database "+name+" lacks tables broker, broker_group, client_meta_info, client_offline_state, datasource_config, leader_election, readonly_broker_group_setting, subject_info, subject_route:") {
		t.Fatalf("error = %v", err)
	}
}

func TestOpenMySQLErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testmysql.Admin(t) // fail early, with the hint, if the server is down

	cfg := testmysql.ServerConfig(t)
	cfg.DBName = "qmq_test_does_not_exist"
	_, err := OpenMySQL(ctx, cfg.FormatDSN(), 1)
	if err == nil || !strings.Contains(err.Error(), "has no database qmq_test_does_not_exist") || !strings.Contains(err.Error(), "create database qmq_test_does_not_exist") {
		t.Errorf("unknown database: error = %v", err)
	} else {
		t.Log(err)
	}

	_, err = OpenMySQL(ctx, "root@tcp(127.0.0.1:1)/qmq_metaserver?timeout=2s", 1)
	if err == nil || !strings.Contains(err.Error(), "cannot connect to MySQL at 127.0.0.1:1") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unreachable server: error = %v", err)
	} else {
		t.Log(err)
	}

	_, err = OpenMySQL(ctx, "root:secret@tcp(127.0.0.1:3306)/", 1)
	if err == nil || !strings.Contains(err.Error(), "names no database") || strings.Contains(err.Error(), "secret") {
		t.Errorf("no database: error = %v", err)
	}
	_, err = OpenMySQL(ctx, "root:secret@127.0.0.1/qmq", 1)
	if err == nil || !strings.Contains(err.Error(), "bad DSN") || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad DSN: error = %v", err)
	}
}

// TestMySQLCompatibleWithQMQRows checks rows written the way QMQ's Java
// metaserver writes them (INET_ATON, NOW() in a non-UTC session) read back
// right, and that QMQ's INET_NTOA reads what we write.
func TestMySQLCompatibleWithQMQRows(t *testing.T) {
	ctx := context.Background()
	_, dsn := createTestDatabase(t, nil)
	s, err := OpenMySQL(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	java, err := sql.Open("mysql", dsn) // no parseTime, no UTC: like JDBC in Asia/Shanghai
	if err != nil {
		t.Fatal(err)
	}
	defer java.Close()
	conn, err := java.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET time_zone = '+08:00'",
		"INSERT IGNORE INTO broker(group_name,role,hostname,ip,serve_port,sync_port) VALUES ('g',0,'h1',INET_ATON('255.255.255.255'),20881,20882)",
		"INSERT INTO broker_group(group_name,kind,master_address,broker_state,create_time) VALUES('g',1,'1.2.3.4:20881',1,NOW())",
		"INSERT INTO subject_info(name,tag,create_time) VALUES('s','t',NOW())",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	bs, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers", bs, []Broker{{Group: "g", Role: RoleMaster, Hostname: "h1", IP: "255.255.255.255", ServePort: 20881, SyncPort: 20882}})

	now := time.Now()
	gs, err := s.ListBrokerGroups(ctx)
	must(t, err)
	if d := now.Sub(gs[0].UpdateTime); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("update_time written with NOW() in +08:00 reads as %v, now is %v", gs[0].UpdateTime, now.UTC())
	}
	si, _, err := s.GetSubjectInfo(ctx, "s")
	must(t, err)
	if d := now.Sub(si.UpdateTime); d < -2*time.Second || d > 10*time.Second {
		t.Errorf("subject_info.update_time reads as %v, now is %v", si.UpdateTime, now.UTC())
	}

	// And the other way round: what we write, QMQ reads with INET_NTOA and in its time zone.
	must(t, s.InsertBroker(ctx, Broker{Group: "g", Role: RoleSlave, Hostname: "h2", IP: "10.20.30.40", ServePort: 20881, SyncPort: 20882}))
	hb := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g2", Kind: KindNormal, State: StateRW, UpdateTime: hb}))
	var ip, ut string
	must(t, conn.QueryRowContext(ctx, "SELECT INET_NTOA(ip) FROM broker WHERE hostname='h2'").Scan(&ip))
	must(t, conn.QueryRowContext(ctx, "SELECT update_time FROM broker_group WHERE group_name='g2'").Scan(&ut))
	if ip != "10.20.30.40" || ut != "2024-06-01 08:00:00" {
		t.Errorf("QMQ reads ip %q, update_time %q (+08:00); want 10.20.30.40, 2024-06-01 08:00:00", ip, ut)
	}
}
