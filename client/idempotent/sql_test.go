package idempotent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/qmq-go/qmq/client"

	"github.com/qmq-go/qmq/internal/testmysql"
)

// backend is a database to run the SQL checker tests against.
type backend struct {
	name    string
	dialect Dialect
	open    func(t *testing.T) *sql.DB
	// ago is an SQL expression for "d ago" in update_at's format.
	ago func(d time.Duration) string
	// effectsDDL creates the handler's own table for the transactional tests.
	effectsDDL string
}

func backends() []backend {
	return []backend{
		{name: "MariaDB", dialect: MySQL, open: openMariaDB,
			ago: func(d time.Duration) string {
				return fmt.Sprintf("CURRENT_TIMESTAMP - INTERVAL %d SECOND", int64(d/time.Second))
			},
			effectsDDL: "CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(100) NOT NULL) ENGINE=InnoDB"},
		{name: "SQLite", dialect: SQLite, open: openSQLite,
			ago: func(d time.Duration) string {
				return fmt.Sprintf("datetime('now', '-%d seconds')", int64(d/time.Second))
			},
			effectsDDL: "CREATE TABLE effects (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)"},
	}
}

// openMariaDB creates a database of its own, dropped when the test ends.
func openMariaDB(t *testing.T) *sql.DB {
	t.Helper()
	_, dsn := testmysql.Database(t, "qmq_idem_")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() }) // before the database is dropped (cleanups run last first)
	return db
}

// openSQLite opens a database file in the test's temp dir, configured as
// the Dialect documentation recommends.
func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idem.db")
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newChecker opens a fresh database of b with the dedup table created.
func newChecker(t *testing.T, b backend, cfg SQLConfig) (*SQL, *sql.DB) {
	t.Helper()
	db := b.open(t)
	cfg.Dialect = b.dialect
	if cfg.Logger == nil {
		cfg.Logger = testLog(t)
	}
	c, err := NewSQL(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Twice: the DDL must be re-runnable.
	if err := c.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, db
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func TestSQLSkipsDuplicatesAndReprocessesFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tx := range []bool{false, true} {
			t.Run(fmt.Sprintf("transactional=%v", tx), func(t *testing.T) {
				c, db := newChecker(t, b, SQLConfig{Transactional: tx})
				h := &counting{}
				h.fail.Store(1)
				wrapped := Wrap(c, h.handle, WithKeyFunc(byProp))
				ctx := context.Background()
				if err := wrapped(ctx, msg("g", "order-7")); err == nil {
					t.Fatal("first delivery: the handler's failure was not returned")
				}
				if n := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); n != 0 {
					t.Fatalf("%d dedup rows after the failure; want 0 (key released)", n)
				}
				for i := 0; i < 3; i++ {
					if err := wrapped(ctx, msg("g", "order-7")); err != nil {
						t.Fatalf("redelivery %d: %v", i, err)
					}
				}
				if h.calls.Load() != 2 || h.success.Load() != 1 {
					t.Fatalf("calls=%d successes=%d; want the failure, one success, and two duplicates skipped", h.calls.Load(), h.success.Load())
				}
				if n := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k = ?", "%g%order-7"); n != 1 {
					t.Fatalf("%d dedup rows for %%g%%order-7; want 1", n)
				}
				// Another group shares the table and processes the key once too.
				if err := wrapped(ctx, msg("other", "order-7")); err != nil || h.success.Load() != 2 {
					t.Fatalf("other group: err=%v successes=%d; want it processed", err, h.success.Load())
				}
				// A handler panic releases the key.
				h.panics.Store(1)
				func() {
					defer func() { recover() }()
					_ = wrapped(ctx, msg("g", "boom"))
				}()
				if n := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k = ?", "%g%boom"); n != 0 {
					t.Fatal("the key of a panicking handler was not released")
				}
			})
		}
	})
}

func TestSQLConcurrentDuplicatesProcessOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tx := range []bool{false, true} {
			t.Run(fmt.Sprintf("transactional=%v", tx), func(t *testing.T) {
				c, db := newChecker(t, b, SQLConfig{Transactional: tx})
				// Each transaction holds a connection while its handler runs.
				db.SetMaxOpenConns(40)
				testConcurrentDuplicates(t, c, 16, 10)
				if n := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); n != 10 {
					t.Fatalf("%d dedup rows; want 10", n)
				}
			})
		}
	})
}

func TestSQLTransactionalCommitsHandlerWritesWithKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, db := newChecker(t, b, SQLConfig{Transactional: true})
		if _, err := db.Exec(b.effectsDDL); err != nil {
			t.Fatal(err)
		}
		fail := true
		wrapped := Wrap(c, func(ctx context.Context, m *client.Message) error {
			tx := Tx(ctx)
			if tx == nil {
				return errors.New("no transaction in the handler's context")
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO effects (k) VALUES (?)", byProp(m)); err != nil {
				return err
			}
			if fail {
				fail = false
				return errors.New("failing after the write")
			}
			return nil
		}, WithKeyFunc(byProp))
		ctx := context.Background()

		if err := wrapped(ctx, msg("g", "pay-1")); err == nil {
			t.Fatal("the handler's failure was not returned")
		}
		if e, d := count(t, db, "SELECT COUNT(*) FROM effects"), count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); e != 0 || d != 0 {
			t.Fatalf("after the failure: %d effect rows, %d dedup rows; want both rolled back", e, d)
		}
		for i := 0; i < 3; i++ {
			if err := wrapped(ctx, msg("g", "pay-1")); err != nil {
				t.Fatalf("delivery %d: %v", i, err)
			}
		}
		if e, d := count(t, db, "SELECT COUNT(*) FROM effects"), count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); e != 1 || d != 1 {
			t.Fatalf("after success and duplicates: %d effect rows, %d dedup rows; want 1 and 1", e, d)
		}
	})
}

// A cancelled handler context rolls the transaction back: the message must
// be retried, not acknowledged with its writes lost.
func TestSQLTransactionalCancelledContextRetries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, db := newChecker(t, b, SQLConfig{Transactional: true})
		if _, err := db.Exec(b.effectsDDL); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		err := Wrap(c, func(ctx context.Context, m *client.Message) error {
			if _, err := Tx(ctx).ExecContext(ctx, "INSERT INTO effects (k) VALUES ('x')"); err != nil {
				return err
			}
			cancel()
			time.Sleep(50 * time.Millisecond) // database/sql rolls back asynchronously
			return nil
		}, WithKeyFunc(byProp))(ctx, msg("g", "k"))
		if err == nil || !strings.Contains(err.Error(), "could not be committed") {
			t.Fatalf("got %v; want the failed commit reported so the message is retried", err)
		}
		if e, d := count(t, db, "SELECT COUNT(*) FROM effects"), count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"); e != 0 || d != 0 {
			t.Fatalf("%d effect rows, %d dedup rows; want both rolled back", e, d)
		}
	})
}

// A process that dies while handling leaves its key: duplicates are
// retried until the lease ends, then skipped (see the package doc).
func TestSQLLeaseOfAbandonedKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, _ := newChecker(t, b, SQLConfig{Lease: time.Second})
		ctx := context.Background()
		if _, err := c.Acquire(ctx, "crashed"); err != nil { // never committed nor released
			t.Fatal(err)
		}
		if _, err := c.Acquire(ctx, "crashed"); !errors.Is(err, ErrInFlight) {
			t.Fatalf("during the lease: %v; want ErrInFlight", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := c.Acquire(ctx, "crashed")
			if errors.Is(err, ErrProcessed) {
				break
			}
			if !errors.Is(err, ErrInFlight) || time.Now().After(deadline) {
				t.Fatalf("after the lease: %v; want ErrProcessed within a few seconds", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// Rows written by QMQ's Java JdbcIdempotentChecker (INSERT IGNORE INTO
// t(k) VALUES(?), update_at defaulted) count as processed.
func TestSQLRecognisesJavaRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, db := newChecker(t, b, SQLConfig{})
		if _, err := db.Exec("INSERT INTO deduplicate_tbl (k) VALUES (?)", "%java-group%legacy-id"); err != nil {
			t.Fatal(err)
		}
		h := &counting{}
		if err := Wrap(c, h.handle, WithKeyFunc(byProp))(context.Background(), msg("java-group", "legacy-id")); err != nil {
			t.Fatal(err)
		}
		if h.calls.Load() != 0 {
			t.Fatal("a key processed by a Java consumer was handled again")
		}
	})
}

func TestSQLGarbageCollectDeletesOnlyOldRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, db := newChecker(t, b, SQLConfig{GCBatchSize: 3})
		ctx := context.Background()
		claim := func(k string, commit bool) {
			l, err := c.Acquire(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if commit {
				if err := l.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := 0; i < 10; i++ {
			claim(fmt.Sprintf("old-%d", i), true)
		}
		for i := 0; i < 5; i++ {
			claim(fmt.Sprintf("new-%d", i), true)
		}
		claim("in-flight", false)
		if _, err := db.Exec("UPDATE deduplicate_tbl SET update_at = " + b.ago(48*time.Hour) + " WHERE k LIKE 'old-%'"); err != nil {
			t.Fatal(err)
		}
		n, err := c.GarbageCollect(ctx, time.Now().Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 10 {
			t.Fatalf("GarbageCollect deleted %d rows; want the 10 old ones (in batches of 3)", n)
		}
		if left := count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k LIKE 'new-%' OR k = 'in-flight'"); left != 6 || count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl") != 6 {
			t.Fatalf("%d recent rows left of 6, %d rows in all", left, count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl"))
		}
		// Collecting up to now leaves keys being processed alone.
		if _, err := c.GarbageCollect(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Acquire(ctx, "in-flight"); !errors.Is(err, ErrInFlight) {
			t.Fatalf("in-flight key after collecting up to now: %v; want ErrInFlight", err)
		}
		if _, err := c.GarbageCollect(ctx, time.Now().Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "in the future") {
			t.Fatalf("collecting up to the future: %v; want it refused", err)
		}
	})
}

func TestSQLStartGC(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, db := newChecker(t, b, SQLConfig{})
		ctx := context.Background()
		for _, k := range []string{"old", "recent"} {
			l, err := c.Acquire(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			l.Commit(ctx)
		}
		if _, err := db.Exec("UPDATE deduplicate_tbl SET update_at = " + b.ago(2*time.Hour) + " WHERE k = 'old'"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartGC(ctx, 0, time.Hour); err == nil {
			t.Fatal("StartGC accepted a zero interval")
		}
		stop, err := c.StartGC(ctx, 20*time.Millisecond, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k = 'old'") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the background collector did not delete the old key within 5s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		stop() // idempotent
		if count(t, db, "SELECT COUNT(*) FROM deduplicate_tbl WHERE k = 'recent'") != 1 {
			t.Fatal("the background collector deleted a recent key")
		}
		// Ending the context stops it too.
		gctx, cancel := context.WithCancel(ctx)
		stop2, err := c.StartGC(gctx, time.Hour, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		done := make(chan struct{})
		go func() { stop2(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the collector did not stop when its context ended")
		}
	})
}

func TestSQLErrorsExplain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		c, err := NewSQL(db, SQLConfig{Dialect: b.dialect})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Acquire(context.Background(), "k")
		want := "idempotent.MySQLSchema"
		if b.dialect == SQLite {
			want = "idempotent.SQLiteSchema"
		}
		if err == nil || !strings.Contains(err.Error(), "table deduplicate_tbl does not exist") || !strings.Contains(err.Error(), want) {
			t.Fatalf("missing table: %v; want it named with the DDL to create it", err)
		}
		t.Logf("missing table: %v", err)

		c, _ = newChecker(t, b, SQLConfig{Table: "dedup_custom", MaxKeyLength: 10})
		if !strings.Contains(c.Schema(), "dedup_custom") || strings.Contains(c.Schema(), DefaultTable) {
			t.Fatalf("Schema() for a custom table:\n%s", c.Schema())
		}
		_, err = c.Acquire(context.Background(), "subject%group%0123456789")
		if err == nil || !strings.Contains(err.Error(), "holds 10") || !strings.Contains(err.Error(), "dedup_custom") {
			t.Fatalf("key too long: %v; want an error naming the limit and the table", err)
		}
		t.Logf("key too long: %v", err)
	})
	if _, err := NewSQL(&sql.DB{}, SQLConfig{Dialect: MySQL, Table: "x; DROP TABLE y"}); err == nil {
		t.Fatal("NewSQL accepted a table name that is not an identifier")
	}
	if _, err := NewSQL(&sql.DB{}, SQLConfig{}); err == nil || !strings.Contains(err.Error(), "idempotent.MySQL or idempotent.SQLite") {
		t.Fatalf("no dialect: %v", err)
	}
}

// Keys are case-sensitive in both databases (QMQ's MySQL DDL would make
// "A" and "a" one key; ours uses a binary collation).
func TestSQLKeysAreCaseSensitive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c, _ := newChecker(t, b, SQLConfig{})
		var mu sync.Mutex
		seen := map[string]bool{}
		wrapped := Wrap(c, func(ctx context.Context, m *client.Message) error {
			mu.Lock()
			seen[byProp(m)] = true
			mu.Unlock()
			return nil
		}, WithKeyFunc(byProp))
		for _, k := range []string{"abc", "ABC"} {
			if err := wrapped(context.Background(), msg("g", k)); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) != 2 {
			t.Fatalf("handled %v; want both abc and ABC", seen)
		}
	})
}

// A table created with QMQ's own DDL for JdbcIdempotentChecker (no IF NOT
// EXISTS, the table's default collation on k) works as is.
func TestSQLOnTableCreatedByQMQJava(t *testing.T) {
	db := openMariaDB(t)
	const javaDDL = "CREATE TABLE `deduplicate_tbl` (" +
		"`id` BIGINT NOT NULL AUTO_INCREMENT, " +
		"`k` VARCHAR(100) NOT NULL, " +
		"`update_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, " +
		"PRIMARY KEY (`id`), UNIQUE KEY `uniq_k` (`k`)) ENGINE=INNODB DEFAULT CHARSET=utf8mb4"
	if _, err := db.Exec(javaDDL); err != nil {
		t.Fatal(err)
	}
	for _, tx := range []bool{false, true} {
		c, err := NewSQL(db, SQLConfig{Dialect: MySQL, Transactional: tx, Logger: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		h := &counting{}
		h.fail.Store(1)
		wrapped := Wrap(c, h.handle, WithKeyFunc(byProp))
		k := fmt.Sprintf("tx-%v", tx)
		for i := 0; i < 3; i++ {
			_ = wrapped(context.Background(), msg("g", k))
		}
		if h.calls.Load() != 2 || h.success.Load() != 1 {
			t.Fatalf("transactional=%v: calls=%d successes=%d; want a failure, a success and a skipped duplicate", tx, h.calls.Load(), h.success.Load())
		}
	}
	c, _ := NewSQL(db, SQLConfig{Dialect: MySQL})
	if _, err := db.Exec("UPDATE deduplicate_tbl SET update_at = CURRENT_TIMESTAMP - INTERVAL 2 DAY"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.GarbageCollect(context.Background(), time.Now().Add(-24*time.Hour)); err != nil || n != 2 {
		t.Fatalf("GarbageCollect: %d, %v; want the 2 rows", n, err)
	}
}
