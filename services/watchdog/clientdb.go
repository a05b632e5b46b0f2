package watchdog

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/qmq-go/qmq/client/tx"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// A datasource_config row names a client database by url "<type>://host:port"
// (QMQ's tools.sh AddDb --type, default mmm):
//
//	mmm://host:port            MySQL/MariaDB (QMQ's MySQL driver name);
//	mysql://host:port          the same; the table is watchdog.table
//	                           (qmq_produce.qmq_msg_queue, QMQ's)
//	mmm://host:port/appdb      ours: the table qmq_msg_queue of database appdb,
//	                           for applications that keep it in their own database
//	postgresql://host:port/db  ours: PostgreSQL database db, table
//	postgres://host:port/db    qmq_produce.qmq_msg_queue (schema/init_client_postgres.sql);
//	postgresql://host:port     without /db, the database named as user_name
//	                           (PostgreSQL's own default), which is what
//	                           `qmq tools AddDb --type=postgresql` registers
//
// user_name and password are the login. The password is used to connect
// and never appears in a log line, /health, /metrics or an error: the
// watchdog names a database by its url alone.

// clientDB is how to reach one client database.
type clientDB struct {
	url      string // the row's url, which names the database in logs and metrics
	dialect  tx.Dialect
	table    string
	user     string
	password string
	addr     string // host:port
	dbname   string // PostgreSQL database, or the MySQL database of the table
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// tableName is a table, optionally database.table (or schema.table).
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)

// parseClientDB reads a datasource_config row. Errors name the url only.
func parseClientDB(row store.ClientDB, defaultTable string) (clientDB, error) {
	bad := func(format string, args ...any) (clientDB, error) {
		return clientDB{}, fmt.Errorf("datasource_config url %q: %s; want mmm://host:port (MySQL/MariaDB, QMQ's form), mmm://host:port/database or postgresql://host:port/database",
			redactURL(row.URL), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(strings.TrimSpace(row.URL))
	if err != nil {
		return bad("not a URL")
	}
	if u.User != nil {
		return bad("the login belongs in user_name and password, not in the url")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return bad("no host:port")
	}
	db := clientDB{url: row.URL, user: row.User, password: row.Password, addr: net.JoinHostPort(host, port)}
	name := strings.Trim(u.Path, "/")
	if name != "" && !identifier.MatchString(name) {
		return bad("database %q is not a plain name", name)
	}
	switch strings.ToLower(u.Scheme) {
	case "mmm", "mysql":
		db.dialect, db.table = tx.MySQL, defaultTable
		if name != "" {
			db.dbname, db.table = name, name+".qmq_msg_queue"
		}
	case "postgresql", "postgres":
		if name == "" {
			name = row.User
		}
		if !identifier.MatchString(name) {
			return bad("name the PostgreSQL database holding schema qmq_produce, postgresql://host:port/<database> (user_name %q is not a database name)", row.User)
		}
		db.dialect, db.dbname, db.table = tx.PostgreSQL, name, "qmq_produce.qmq_msg_queue"
	default:
		return bad("unknown type %q", u.Scheme)
	}
	return db, nil
}

// open returns a pool for the database; it does not connect yet.
func (c clientDB) open() (*sql.DB, error) {
	var db *sql.DB
	switch c.dialect {
	case tx.MySQL:
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = c.user, c.password, "tcp", c.addr, c.dbname
		cfg.Timeout = 5 * time.Second
		cfg.ReadTimeout = time.Minute
		cfg.WriteTimeout = time.Minute
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.url, redact(err, c.password))
		}
		db = sql.OpenDB(connector)
	case tx.PostgreSQL:
		host, port, _ := net.SplitHostPort(c.addr)
		// Parsing a connection string without the password, then setting
		// it, keeps the password out of any string the driver might quote.
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=%s connect_timeout=5", host, port, c.dbname))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.url, redact(err, c.password))
		}
		cfg.User, cfg.Password = c.user, c.password
		db = stdlib.OpenDB(*cfg)
	}
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(10 * time.Minute)
	return db, nil
}

// redactURL is url without a login, should someone have put one in it.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return "(login removed)" + s[i:]
	}
	return s
}

// redactedError is an error whose text had a password cut out.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact replaces password in err's text by "******". Drivers do not quote
// passwords in their errors today; this keeps it so if one ever does.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), password, "******"), err: err}
}
