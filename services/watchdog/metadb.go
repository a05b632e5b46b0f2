package watchdog

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // the "sqlite" driver, for the metaserver's embedded store

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// metaDB is the metaserver's database as the watchdog uses it: the
// leader_election and datasource_config tables. The watchdog runs its own
// statements (rather than through the metaserver's store) because the
// election is the watchdog's business and needs the database's clock.
type metaDB struct {
	db    *sql.DB
	where string // for messages: "sqlite <path>" or "mysql <addr>/<db>", never a password
	// nowMillis is the SQL expression of the database's clock in epoch
	// milliseconds, as QMQ's unix_timestamp(now(3)) * 1000.
	nowMillis string
	// ignoreDup is appended to an INSERT so that an existing row of the
	// same unique key is left alone and is not an error.
	ignoreDup string
}

// openMetaDB opens the metaserver's database named by the settings: MySQL
// when jdbc.url is set, else the embedded SQLite file
// <store.root>/metaserver.db, which must exist (the metaserver creates it;
// the watchdog never creates the metaserver's schema).
func openMetaDB(ctx context.Context, s Settings) (*metaDB, error) {
	if s.JDBCURL == "" {
		path := filepath.Join(s.StoreRoot, "metaserver.db")
		// mode=rw: a missing file is an error, not a new empty database.
		dsn := "file:" + path + "?mode=rw&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open the metaserver's SQLite database %s: %w", path, err)
		}
		db.SetMaxOpenConns(1)
		m := &metaDB{db: db, where: "sqlite " + path,
			nowMillis: "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)",
			ignoreDup: " ON CONFLICT DO NOTHING"}
		if err := m.check(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("%w; is store.root (%s) the metaserver's? start the metaserver first, it creates the file", err, s.StoreRoot)
		}
		return m, nil
	}
	dsn, _, err := store.DSNFromJDBC(s.JDBCURL, s.JDBCUser, s.JDBCPassword)
	if err != nil {
		return nil, fmt.Errorf("jdbc.url in %s: %w", FileDatasource, err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("jdbc.url in %s: %w", FileDatasource, err)
	}
	// Rows affected must count matched rows, so that a renewal in the same
	// millisecond as the previous one still reads as renewed.
	cfg.ClientFoundRows = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("jdbc.url in %s: %w", FileDatasource, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	db.SetConnMaxLifetime(5 * time.Minute)
	m := &metaDB{db: db, where: fmt.Sprintf("mysql %s/%s", cfg.Addr, cfg.DBName),
		nowMillis: "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)",
		ignoreDup: " ON DUPLICATE KEY UPDATE id = id"}
	if err := m.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return m, nil
}

// check reads both tables once, so that a wrong database or a missing
// schema is reported at start-up.
func (m *metaDB) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, q := range []string{"SELECT COUNT(*) FROM leader_election", "SELECT COUNT(*) FROM datasource_config"} {
		var n int64
		if err := m.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("the metaserver's database (%s) cannot be read (%s): %w; apply schema/init.sql (MySQL) or let the metaserver create it (SQLite)", m.where, q, err)
		}
	}
	return nil
}

func (m *metaDB) close() error { return m.db.Close() }

// clientDBs lists the online (status 0) datasource_config rows of room,
// in insertion order.
func (m *metaDB) clientDBs(ctx context.Context, room string) ([]store.ClientDB, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT url, user_name, password, status, room FROM datasource_config WHERE status = 0 AND room = ? ORDER BY id", room)
	if err != nil {
		return nil, fmt.Errorf("list datasource_config rows of room %q in %s: %w", room, m.where, err)
	}
	defer rows.Close()
	var out []store.ClientDB
	for rows.Next() {
		var d store.ClientDB
		if err := rows.Scan(&d.URL, &d.User, &d.Password, &d.Status, &d.Room); err != nil {
			return nil, fmt.Errorf("read datasource_config in %s: %w", m.where, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list datasource_config rows of room %q in %s: %w", room, m.where, err)
	}
	return out, nil
}
