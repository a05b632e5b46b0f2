package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// tables are the nine tables of the metaserver schema (schema/init.sql), in the
// schema's order.
var tables = []string{
	"broker_group",
	"subject_info",
	"subject_route",
	"client_meta_info",
	"client_offline_state",
	"broker",
	"leader_election",
	"datasource_config",
	"readonly_broker_group_setting",
}

// OpenMySQL opens the metaserver database dsn (a go-sql-driver DSN such as
// "user:pass@tcp(host:3306)/qmq_metaserver"; see DSNFromJDBC for QMQ's JDBC
// URLs) with at most maxOpen connections (no limit if maxOpen <= 0), pings it
// and checks that the schema's nine tables exist. It never creates tables: the
// operator applies schema/init.sql, and the error says so when tables are missing.
//
// Whatever dsn says, these settings are forced, because the store relies on
// them: parseTime=true and loc=UTC (times are read and written as UTC
// time.Time), time_zone='+00:00' (the session's TIMESTAMP conversion is then
// the identity, so rows written by QMQ's Java metaserver with NOW() read back
// correctly too), and clientFoundRows=true (rows affected counts matched rows,
// as QMQ's JDBC driver reports and SQLite does, not only changed rows).
func OpenMySQL(ctx context.Context, dsn string, maxOpen int) (Store, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message does not quote the DSN, which may hold a password.
		return nil, fmt.Errorf("open MySQL: bad DSN (want user:password@tcp(host:port)/database?params): %w", err)
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("open MySQL at %s: the DSN names no database (want user:password@tcp(host:port)/qmq_metaserver)", cfg.Addr)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.ClientFoundRows = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"

	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open MySQL at %s: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(connector)
	if maxOpen > 0 {
		db.SetMaxOpenConns(maxOpen)
		db.SetMaxIdleConns(maxOpen)
	}
	// Below MySQL's default wait_timeout (8 h) and typical proxy idle limits.
	db.SetConnMaxLifetime(5 * time.Minute)

	if err := checkMySQL(ctx, db, cfg); err != nil {
		db.Close()
		return nil, err
	}
	return &sqlStore{db: db, d: mysqlDialect, where: fmt.Sprintf("mysql %s(%s)/%s", cfg.Net, cfg.Addr, cfg.DBName)}, nil
}

func checkMySQL(ctx context.Context, db *sql.DB, cfg *mysql.Config) error {
	if err := db.PingContext(ctx); err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1049 { // ER_BAD_DB_ERROR
			return fmt.Errorf("MySQL at %s has no database %s: create it and apply the schema with `%s -e 'create database %s' && %s %s < schema/init.sql` (%w)",
				cfg.Addr, cfg.DBName, mysqlCommand(cfg), cfg.DBName, mysqlCommand(cfg), cfg.DBName, err)
		}
		return fmt.Errorf("cannot connect to MySQL at %s (database %s, user %q): %w", cfg.Addr, cfg.DBName, cfg.User, err)
	}
	rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
	if err != nil {
		return fmt.Errorf("list tables of database %s at MySQL %s: %w", cfg.DBName, cfg.Addr, err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("list tables of database %s at MySQL %s: %w", cfg.DBName, cfg.Addr, err)
		}
		have[strings.ToLower(name)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables of database %s at MySQL %s: %w", cfg.DBName, cfg.Addr, err)
	}
	var missing []string
	for _, t := range tables {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("database %s lacks tables %s: apply the schema with `%s %s < schema/init.sql`",
			cfg.DBName, strings.Join(missing, ", "), mysqlCommand(cfg), cfg.DBName)
	}
	return nil
}

// mysqlCommand is the mysql client command line reaching the server of cfg,
// for the hints in error messages (the password is never printed: -p prompts).
func mysqlCommand(cfg *mysql.Config) string {
	cmd := []string{"mysql"}
	switch cfg.Net {
	case "unix":
		cmd = append(cmd, "-S"+cfg.Addr)
	default:
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host, port = cfg.Addr, ""
		}
		cmd = append(cmd, "-h"+host)
		if port != "" && port != "3306" {
			cmd = append(cmd, "-P"+port)
		}
	}
	if cfg.User != "" {
		cmd = append(cmd, "-u"+cfg.User)
	}
	if cfg.Passwd != "" {
		cmd = append(cmd, "-p")
	}
	return strings.Join(cmd, " ")
}
