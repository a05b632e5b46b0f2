package dic

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Source names the metaserver's database, as datasource.properties does:
// MySQL/MariaDB when JDBCURL is set, else the embedded SQLite file.
type Source struct {
	JDBCURL, User, Password string
	// SQLitePath is the metaserver's SQLite file
	// (<store.root>/metaserver.db), used when JDBCURL is empty.
	SQLitePath string
}

// Open opens the dictionary in src's database and checks qmq_dic (creating
// it in SQLite). The caller closes the returned database after the
// dictionary's last use.
func Open(ctx context.Context, src Source) (Dictionary, *sql.DB, error) {
	if src.JDBCURL == "" {
		db, err := OpenSQLite(ctx, src.SQLitePath)
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(1)
		d, _ := NewSQL(db, SQLite, "sqlite "+src.SQLitePath)
		return d, db, nil
	}
	dsn, _, err := store.DSNFromJDBC(src.JDBCURL, src.User, src.Password)
	if err != nil {
		return nil, nil, fmt.Errorf("the dictionary's database: %w", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("the dictionary's database: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("the dictionary's database: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	db.SetConnMaxLifetime(5 * time.Minute)
	where := fmt.Sprintf("mysql %s/%s", cfg.Addr, cfg.DBName)
	if err := CheckTable(ctx, db); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	d, _ := NewSQL(db, MySQL, where)
	return d, db, nil
}
