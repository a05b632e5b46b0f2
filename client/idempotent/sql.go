package idempotent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/backoff"
)

// Dialect is the SQL flavour of the database holding the table.
type Dialect int

const (
	// MySQL is MySQL or MariaDB through github.com/go-sql-driver/mysql
	// (INSERT IGNORE).
	MySQL Dialect = iota + 1
	// SQLite is SQLite through modernc.org/sqlite, driver name "sqlite"
	// (INSERT OR IGNORE). Open it with a busy timeout, e.g.
	// "file.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)":
	// SQLite has one writer at a time and concurrent handlers otherwise fail
	// with SQLITE_BUSY (they are retried, but for nothing).
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case MySQL:
		return "MySQL"
	case SQLite:
		return "SQLite"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// DefaultTable is the table name of QMQ's documentation (docs/cn/exactlyonce.md).
const DefaultTable = "deduplicate_tbl"

// MySQLSchema creates the table of QMQ's JdbcIdempotentChecker under its
// documented name: a table a Java consumer already uses can be shared as
// is. Two additions, neither changing the columns: IF NOT EXISTS, and a
// binary collation on k so that keys differing only in case or accents are
// different keys (QMQ's DDL inherits the case-insensitive table default).
// k holds <subject>%<group>%<key>: widen it (and set
// SQLConfig.MaxKeyLength) for long subjects or business keys.
//
// update_at is when the key was processed, except while a handler of the
// non-transactional mode runs: then it is in the future, the end of the
// claim's lease (see SQLConfig.Lease).
const MySQLSchema = "CREATE TABLE IF NOT EXISTS `deduplicate_tbl` (\n" +
	"  `id` BIGINT NOT NULL AUTO_INCREMENT COMMENT 'primary key',\n" +
	"  `k` VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'dedup key: subject%consumer group%key',\n" +
	"  `update_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'processed at (in the future: lease of a key being processed)',\n" +
	"  PRIMARY KEY (`id`),\n" +
	"  UNIQUE KEY `uniq_k` (`k`)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT 'QMQ consumer idempotency'"

// SQLiteSchema is MySQLSchema for SQLite. update_at holds UTC text
// "YYYY-MM-DD HH:MM:SS", as CURRENT_TIMESTAMP writes it; the checker
// compares it as text, so do not store other formats in it.
const SQLiteSchema = `CREATE TABLE IF NOT EXISTS "deduplicate_tbl" (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  k VARCHAR(100) NOT NULL UNIQUE,
  update_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)`

// Defaults of SQLConfig.
const (
	DefaultLease        = 5 * time.Minute
	DefaultMaxKeyLength = 100 // VARCHAR(100), QMQ's column size
	DefaultGCBatchSize  = 1000
)

// SQLConfig configures NewSQL.
type SQLConfig struct {
	Dialect Dialect
	// Table is the table name, optionally qualified as database.table
	// (default DefaultTable). Letters, digits and '_' only.
	Table string
	// Transactional selects QMQ's TransactionalJdbcIdempotentChecker mode:
	// the key is inserted in a transaction handed to the handler (Tx), which
	// commits only if the handler succeeds. The handler must do all its
	// database work through that transaction, and must neither commit nor
	// roll it back.
	Transactional bool
	// TxOptions are the options of that transaction (nil: driver default).
	TxOptions *sql.TxOptions
	// Lease (non-transactional mode) is how long a claimed key counts as in
	// flight: duplicates arriving meanwhile are retried later. If the
	// process dies while handling, the key is stuck for this long and then
	// counts as processed (see the package documentation). It must exceed
	// the longest handler run. Default DefaultLease; whole seconds.
	Lease time.Duration
	// MaxKeyLength is the size of column k in characters (default
	// DefaultMaxKeyLength). Longer keys are refused with an error rather
	// than let MySQL's INSERT IGNORE truncate them into collisions.
	MaxKeyLength int
	// GCBatchSize is how many rows one GarbageCollect statement deletes at
	// most (default DefaultGCBatchSize).
	GCBatchSize int
	// Logger (default: discard).
	Logger hclog.Logger
}

// SQL is a Checker over a database/sql table shaped as QMQ's
// JdbcIdempotentChecker's (id, k unique, update_at), for MySQL/MariaDB and
// SQLite. Create the table with CreateTable or the DDL of Schema.
type SQL struct {
	db     *sql.DB
	cfg    SQLConfig
	table  string // as configured, for messages
	quoted string // quoted identifier, for statements
	log    hclog.Logger
	q      queries
}

type queries struct {
	claim    string // with lease (non-transactional)
	claimTx  string // update_at defaults to now
	inFlight string // 1 if the key's update_at is in the future
	done     string
	release  string
	gcSelect string
	gcDelete string // %s: the id list
	leaseArg func(time.Duration) any
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// NewSQL returns a checker on db. It does not touch the database: a missing
// table shows on first use (or call CreateTable).
func NewSQL(db *sql.DB, cfg SQLConfig) (*SQL, error) {
	if db == nil {
		return nil, errors.New("idempotent.NewSQL: db is nil")
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if !identRE.MatchString(cfg.Table) {
		return nil, fmt.Errorf("idempotent.NewSQL: table name %q is not a plain identifier (letters, digits, '_', optionally database.table)", cfg.Table)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < time.Second {
		// update_at has whole seconds; a shorter lease would be zero.
		cfg.Lease = time.Second
	}
	if cfg.MaxKeyLength <= 0 {
		cfg.MaxKeyLength = DefaultMaxKeyLength
	}
	if cfg.GCBatchSize <= 0 {
		cfg.GCBatchSize = DefaultGCBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &SQL{db: db, cfg: cfg, table: cfg.Table, log: cfg.Logger.Named("idempotent").With("table", cfg.Table)}
	parts := strings.Split(cfg.Table, ".")
	switch cfg.Dialect {
	case MySQL:
		for i, p := range parts {
			parts[i] = "`" + p + "`"
		}
		c.quoted = strings.Join(parts, ".")
		c.q = queries{
			claim:   "INSERT IGNORE INTO " + c.quoted + " (k, update_at) VALUES (?, CURRENT_TIMESTAMP + INTERVAL ? SECOND)",
			claimTx: "INSERT IGNORE INTO " + c.quoted + " (k) VALUES (?)",
			// FROM_UNIXTIME yields the session time zone, in which MySQL
			// also shows TIMESTAMP columns: no time zone configuration
			// (DSN loc, server time_zone) can shift the comparison.
			gcSelect: "SELECT id FROM " + c.quoted + " WHERE id > ? AND update_at < FROM_UNIXTIME(?) ORDER BY id LIMIT ?",
			gcDelete: "DELETE FROM " + c.quoted + " WHERE id IN (%s) AND update_at < FROM_UNIXTIME(?)",
			leaseArg: func(d time.Duration) any { return int64(d / time.Second) },
		}
	case SQLite:
		for i, p := range parts {
			parts[i] = `"` + p + `"`
		}
		c.quoted = strings.Join(parts, ".")
		c.q = queries{
			claim:    "INSERT OR IGNORE INTO " + c.quoted + " (k, update_at) VALUES (?, datetime('now', ?))",
			claimTx:  "INSERT OR IGNORE INTO " + c.quoted + " (k) VALUES (?)",
			gcSelect: "SELECT id FROM " + c.quoted + " WHERE id > ? AND update_at < datetime(?, 'unixepoch') ORDER BY id LIMIT ?",
			gcDelete: "DELETE FROM " + c.quoted + " WHERE id IN (%s) AND update_at < datetime(?, 'unixepoch')",
			leaseArg: func(d time.Duration) any { return fmt.Sprintf("+%d seconds", int64(d/time.Second)) },
		}
	default:
		return nil, fmt.Errorf("idempotent.NewSQL: unknown dialect %v (use idempotent.MySQL or idempotent.SQLite)", cfg.Dialect)
	}
	// Time comparisons use the database's clock, the one that wrote
	// update_at: consumers with skewed clocks still agree on leases.
	c.q.inFlight = "SELECT update_at > CURRENT_TIMESTAMP FROM " + c.quoted + " WHERE k = ?"
	c.q.done = "UPDATE " + c.quoted + " SET update_at = CURRENT_TIMESTAMP WHERE k = ?"
	c.q.release = "DELETE FROM " + c.quoted + " WHERE k = ?"
	return c, nil
}

// Schema returns the CREATE TABLE statement for the configured dialect and
// table (MySQLSchema or SQLiteSchema with the table name replaced).
func (c *SQL) Schema() string {
	if c.cfg.Dialect == MySQL {
		return strings.Replace(MySQLSchema, "`"+DefaultTable+"`", c.quoted, 1)
	}
	return strings.Replace(SQLiteSchema, `"`+DefaultTable+`"`, c.quoted, 1)
}

// CreateTable creates the table if it does not exist.
func (c *SQL) CreateTable(ctx context.Context) error {
	if _, err := c.db.ExecContext(ctx, c.Schema()); err != nil {
		return fmt.Errorf("idempotent: create table %s (%s): %w", c.table, c.cfg.Dialect, err)
	}
	return nil
}

// acquireAttempts bounds Acquire's loop over races where the row it
// collided with disappears before it can be read (released or collected).
const acquireAttempts = 3

// Acquire implements Checker.
func (c *SQL) Acquire(ctx context.Context, key string) (Lease, error) {
	if n := utf8.RuneCountInString(key); n > c.cfg.MaxKeyLength {
		fix := fmt.Sprintf("widen the column (ALTER TABLE %s MODIFY k VARCHAR(<n>) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL) and raise SQLConfig.MaxKeyLength", c.table)
		if c.cfg.Dialect == SQLite {
			fix = "raise SQLConfig.MaxKeyLength (SQLite does not enforce VARCHAR sizes)"
		}
		return nil, fmt.Errorf("key %q is %d characters but column k of table %s holds %d: %s, or use a shorter key function (subject and consumer group are part of the key)",
			key, n, c.table, c.cfg.MaxKeyLength, fix)
	}
	var lastErr error
	for attempt := 0; attempt < acquireAttempts; attempt++ {
		var l Lease
		var err error
		if c.cfg.Transactional {
			l, err = c.acquireTx(ctx, key)
		} else {
			l, err = c.acquireLease(ctx, key)
		}
		if !errors.Is(err, errVanished) && !isDeadlock(err) {
			return l, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// errVanished: the insert was ignored but no row holds the key.
var errVanished = errors.New("the insert was ignored, yet no row has the key (it was released or collected meanwhile, or INSERT IGNORE ignored another error: compare the table with Schema())")

func (c *SQL) acquireLease(ctx context.Context, key string) (Lease, error) {
	res, err := c.db.ExecContext(ctx, c.q.claim, key, c.q.leaseArg(c.cfg.Lease))
	if err != nil {
		return nil, c.explain("claim", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, c.explain("claim", key, err)
	} else if n == 1 {
		return &sqlLease{c: c, key: key}, nil
	}
	return nil, c.existing(ctx, c.db, key)
}

func (c *SQL) acquireTx(ctx context.Context, key string) (Lease, error) {
	// The transaction lives on ctx: if the handler's context is cancelled,
	// database/sql rolls it back and Commit fails, so nothing half-done is
	// committed.
	tx, err := c.db.BeginTx(ctx, c.cfg.TxOptions)
	if err != nil {
		return nil, c.explain("begin transaction for", key, err)
	}
	// On MySQL a concurrent uncommitted insert of the same key makes this
	// wait for that transaction: a duplicate delivered while the original is
	// handled waits for its outcome instead of being skipped too early.
	res, err := tx.ExecContext(ctx, c.q.claimTx, key)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 1 {
			return &sqlLease{c: c, key: key, tx: tx}, nil
		}
		if err == nil {
			err = c.existing(ctx, tx, key)
			_ = tx.Rollback()
			return nil, err
		}
	}
	_ = tx.Rollback()
	if isLockWaitTimeout(err) {
		return nil, fmt.Errorf("key %q in table %s: waited for another transaction holding it (%v): %w", key, c.table, err, ErrInFlight)
	}
	return nil, c.explain("claim", key, err)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// existing classifies the row a claim collided with.
func (c *SQL) existing(ctx context.Context, q querier, key string) error {
	var inFlight bool
	err := q.QueryRowContext(ctx, c.q.inFlight, key).Scan(&inFlight)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("key %q in table %s: %w", key, c.table, errVanished)
	case err != nil:
		return c.explain("read", key, err)
	case inFlight:
		return fmt.Errorf("key %q in table %s: %w", key, c.table, ErrInFlight)
	}
	return fmt.Errorf("key %q in table %s: %w", key, c.table, ErrProcessed)
}

// explain wraps a database error with the table, the key and, for a
// missing table, what to do.
func (c *SQL) explain(op, key string, err error) error {
	if isNoSuchTable(err) {
		ddl := "idempotent.MySQLSchema"
		if c.cfg.Dialect == SQLite {
			ddl = "idempotent.SQLiteSchema"
		}
		if c.table != DefaultTable {
			ddl = "that (*idempotent.SQL).Schema returns (" + ddl + " with the table renamed)"
		}
		return fmt.Errorf("%s key %q: table %s does not exist: create it with (*idempotent.SQL).CreateTable or the DDL %s: %w", op, key, c.table, ddl, err)
	}
	return fmt.Errorf("%s key %q in table %s (%s): %w", op, key, c.table, c.cfg.Dialect, err)
}

func mysqlErr(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func isNoSuchTable(err error) bool {
	// 1146: ER_NO_SUCH_TABLE. SQLite reports it as SQLITE_ERROR, so its
	// message is all there is.
	return mysqlErr(err) == 1146 || (err != nil && strings.Contains(err.Error(), "no such table"))
}

func isLockWaitTimeout(err error) bool { return mysqlErr(err) == 1205 }

// isDeadlock: InnoDB may pick a claim as a deadlock victim when several
// transactions insert the same key; the claim is simply tried again.
func isDeadlock(err error) bool { return mysqlErr(err) == 1213 }

type sqlLease struct {
	c   *SQL
	key string
	tx  *sql.Tx // transactional mode
}

type txKey struct{}

// Tx returns the transaction of the transactional SQL checker that Wrap
// passes to the handler in its context, nil if there is none. Do the
// handler's database work through it so that it commits together with the
// key, and do not commit or roll it back.
func Tx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(txKey{}).(*sql.Tx)
	return tx
}

func (l *sqlLease) HandlerContext(ctx context.Context) context.Context {
	if l.tx == nil {
		return ctx
	}
	return context.WithValue(ctx, txKey{}, l.tx)
}

// finishAttempts: Commit and Release are worth a second try, since a key
// left behind costs a lost or delayed message (see the package doc).
const finishAttempts = 3

func (l *sqlLease) Commit(ctx context.Context) error {
	if l.tx != nil {
		if err := l.tx.Commit(); err != nil {
			return fmt.Errorf("commit the transaction of key %q (table %s): %w", l.key, l.c.table, err)
		}
		return nil
	}
	if err := l.c.execRetry(ctx, l.c.q.done, l.key); err != nil {
		// The row stays with its lease; when the lease ends it counts as
		// processed anyway. Duplicates meanwhile are retried, not handled.
		l.c.log.Warn("cannot mark key processed; duplicates will be retried until its lease ends", "key", l.key, "lease", l.c.cfg.Lease, "error", err)
	}
	return nil
}

func (l *sqlLease) Release(ctx context.Context) error {
	if l.tx != nil {
		if err := l.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			return fmt.Errorf("roll back the transaction of key %q (table %s): %w", l.key, l.c.table, err)
		}
		return nil
	}
	if err := l.c.execRetry(ctx, l.c.q.release, l.key); err != nil {
		return fmt.Errorf("release key %q: %w; until the row is deleted (DELETE FROM %s WHERE k = '%s') the message is retried, and once the lease (%v) ends it counts as processed without having been",
			l.key, err, l.c.table, strings.ReplaceAll(l.key, "'", "''"), l.c.cfg.Lease)
	}
	return nil
}

func (c *SQL) execRetry(ctx context.Context, query, key string) error {
	var err error
	retry := backoff.Backoff{Min: 100 * time.Millisecond, Max: 200 * time.Millisecond}
	for attempt := 0; attempt < finishAttempts; attempt++ {
		if attempt > 0 && retry.Wait(ctx) != nil {
			return err
		}
		if _, err = c.db.ExecContext(ctx, query, key); err == nil {
			return nil
		}
		err = c.explain("update", key, err)
	}
	return err
}

// GarbageCollect deletes the keys processed before before and returns how
// many. It works in batches of SQLConfig.GCBatchSize: each batch reads ids
// without locking, then deletes those rows by primary key, so InnoDB never
// locks more than one batch of rows nor scans the table under locks
// (update_at has no index). A duplicate delivered after its key was
// collected is handled again: keep keys longer than duplicates can arrive
// (retries included).
func (c *SQL) GarbageCollect(ctx context.Context, before time.Time) (int64, error) {
	if before.After(time.Now()) {
		return 0, fmt.Errorf("idempotent: garbage collect table %s: before (%s) is in the future; that would delete keys being processed", c.table, before.Format(time.RFC3339))
	}
	unix := before.Unix()
	var total int64
	var lastID int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("idempotent: garbage collect table %s: stopped after %d rows: %w", c.table, total, err)
		}
		ids, err := c.gcBatch(ctx, lastID, unix)
		if err != nil {
			return total, fmt.Errorf("idempotent: garbage collect table %s (deleted %d rows so far): %w", c.table, total, err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		args := make([]any, 0, len(ids)+1)
		for _, id := range ids {
			args = append(args, id)
		}
		// Rows touched since they were read (update_at is re-checked) stay.
		args = append(args, unix)
		placeholders := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
		res, err := c.db.ExecContext(ctx, fmt.Sprintf(c.q.gcDelete, placeholders), args...)
		if err != nil {
			return total, fmt.Errorf("idempotent: garbage collect table %s (deleted %d rows so far): %w", c.table, total, c.explain("delete", "", err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("idempotent: garbage collect table %s: %w", c.table, err)
		}
		total += n
		if len(ids) < c.cfg.GCBatchSize {
			return total, nil
		}
		lastID = ids[len(ids)-1]
	}
}

func (c *SQL) gcBatch(ctx context.Context, after, beforeUnix int64) ([]int64, error) {
	rows, err := c.db.QueryContext(ctx, c.q.gcSelect, after, beforeUnix, c.cfg.GCBatchSize)
	if err != nil {
		return nil, c.explain("select old", "", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// StartGC runs GarbageCollect(now-keep) every interval in a goroutine until
// ctx ends or stop is called; stop waits for a running collection to end.
// Several consumers may run it on the same table: collections only delete
// what another has not.
func (c *SQL) StartGC(ctx context.Context, interval, keep time.Duration) (stop func(), err error) {
	if interval <= 0 || keep <= 0 {
		return nil, fmt.Errorf("idempotent: StartGC on table %s: interval (%v) and keep (%v) must be positive", c.table, interval, keep)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := c.GarbageCollect(ctx, time.Now().Add(-keep))
			switch {
			case err != nil && ctx.Err() == nil:
				c.log.Warn("garbage collection failed; trying again next interval", "deleted", n, "interval", interval, "error", err)
			case n > 0:
				c.log.Debug("garbage collected old keys", "deleted", n, "keep", keep)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}
