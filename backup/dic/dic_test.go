package dic

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/qmq-go/qmq/internal/testmysql"

	_ "github.com/go-sql-driver/mysql"
)

type memKV struct {
	mu sync.Mutex
	m  map[string]string
}

func (k *memKV) Get(key []byte) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	return []byte(v), ok, nil
}

func (k *memKV) PutSync(pairs [][2][]byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range pairs {
		k.m[string(p[0])] = string(p[1])
	}
	return nil
}

func mysqlDB(t *testing.T) *sql.DB {
	_, dsn := testmysql.Database(t, "qmq_dic_test_")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ddl, err := os.ReadFile("../../schema/init_backup.sql")
	if err != nil {
		t.Fatal(err)
	}
	var stmt []string
	for _, l := range strings.Split(string(ddl), "\n") {
		if !strings.HasPrefix(l, "--") {
			stmt = append(stmt, l)
		}
	}
	if _, err := db.Exec(strings.Join(stmt, "\n")); err != nil {
		t.Fatalf("apply schema/init_backup.sql: %v", err)
	}
	return db
}

func sqliteDB(t *testing.T) *sql.DB {
	db, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// backends gives each test two dictionaries over one shared table, as two
// backup processes sharing the metaserver's database have.
func backends(t *testing.T) map[string]func(t *testing.T) (Dictionary, Dictionary) {
	return map[string]func(t *testing.T) (Dictionary, Dictionary){
		"mariadb": func(t *testing.T) (Dictionary, Dictionary) {
			db := mysqlDB(t)
			if err := CheckTable(context.Background(), db); err != nil {
				t.Fatal(err)
			}
			a, _ := NewSQL(db, MySQL, "test")
			b, _ := NewSQL(db, MySQL, "test")
			return a, b
		},
		"sqlite": func(t *testing.T) (Dictionary, Dictionary) {
			db := sqliteDB(t)
			a, _ := NewSQL(db, SQLite, "test")
			b, _ := NewSQL(db, SQLite, "test")
			return a, b
		},
		"kv": func(t *testing.T) (Dictionary, Dictionary) {
			kv := &memKV{m: map[string]string{}}
			d := NewKV(kv, "test")
			return d, d
		},
	}
}

func TestDictionary(t *testing.T) {
	ctx := context.Background()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(t)
			if _, ok, err := a.Lookup(ctx, "order.changed"); err != nil || ok {
				t.Fatalf("Lookup of a new name = %v, %v; want not found", ok, err)
			}
			id, err := a.ID(ctx, "order.changed")
			if err != nil || len(id) != 6 {
				t.Fatalf("ID = %q, %v", id, err)
			}
			if again, _ := a.ID(ctx, "order.changed"); again != id {
				t.Fatalf("second ID = %s, first %s", again, id)
			}
			if other, ok, err := b.Lookup(ctx, "order.changed"); err != nil || !ok || other != id {
				t.Fatalf("the other dictionary's Lookup = %q %v %v, want %s", other, ok, err, id)
			}
			if n, err := b.Name(ctx, id); err != nil || n != "order.changed" {
				t.Fatalf("Name(%s) = %q, %v", id, n, err)
			}
			unknown := "999999"
			if id == unknown {
				unknown = "999998"
			}
			if _, err := b.Name(ctx, unknown); !errors.Is(err, ErrUnknownID) {
				t.Fatalf("Name of an unknown id: %v, want ErrUnknownID", err)
			}
			if _, err := b.Name(ctx, "12x"); !errors.Is(err, ErrUnknownID) {
				t.Fatalf("Name of a malformed id: %v, want ErrUnknownID", err)
			}
			if _, err := a.ID(ctx, ""); err == nil {
				t.Fatal("an empty name got an id")
			}
			if _, err := a.ID(ctx, strings.Repeat("x", 101)); err == nil || !strings.Contains(err.Error(), "100") {
				t.Fatalf("a 101-byte name: %v", err)
			}
			// QMQ's retry and dead-letter names of a 100-byte subject.
			long := strings.Repeat("s", 100)
			for _, n := range []string{"%RETRY%" + long, "%DEAD_RETRY%" + long} {
				lid, err := a.ID(ctx, n)
				if err != nil {
					t.Fatalf("ID of the %d-byte %.12s… name: %v", len(n), n, err)
				}
				if back, err := b.Name(ctx, lid); err != nil || back != n {
					t.Fatalf("Name(%s) = %.20q…, %v; want the whole name back", lid, back, err)
				}
			}
			if _, err := a.ID(ctx, "%DEAD_RETRY%"+long+"x"); err == nil || !strings.Contains(err.Error(), "112") {
				t.Fatalf("a 113-byte dead-letter name: %v", err)
			}
			if name != "kv" {
				// Case matters: subjects differing only in case are two subjects.
				up, err := a.ID(ctx, "Order.Changed")
				if err != nil || up == id {
					t.Fatalf("ID(Order.Changed) = %q, %v; want a new id", up, err)
				}
			}

			// Two backups naming the same names at once agree on every id.
			names := []string{"s1", "s2", "s3", "%RETRY%s1", "group-a", "group-b"}
			var wg sync.WaitGroup
			got := make([][]string, 8)
			for g := range got {
				d := a
				if g%2 == 1 {
					d = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, n := range names {
						id, err := d.ID(ctx, n)
						if err != nil {
							t.Error(err)
						}
						got[g] = append(got[g], id)
					}
				}()
			}
			wg.Wait()
			for g := range got {
				if strings.Join(got[g], ",") != strings.Join(got[0], ",") {
					t.Fatalf("goroutine %d got ids %v, goroutine 0 %v", g, got[g], got[0])
				}
			}
		})
	}
}

// TestRandomIDCollisionIsRetried gives the first draw an id that is taken.
func TestRandomIDCollisionIsRetried(t *testing.T) {
	ctx := context.Background()
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			d, _ := open(t)
			c := d.(*cached)
			draws := []int{42, 42, 77}
			c.random = func() int { n := draws[0]; draws = draws[1:]; return n }
			if id, err := c.ID(ctx, "first"); err != nil || id != "000042" {
				t.Fatalf("ID(first) = %q, %v", id, err)
			}
			if id, err := c.ID(ctx, "second"); err != nil || id != "000077" {
				t.Fatalf("ID(second) after a collision = %q, %v; want 000077", id, err)
			}
			c.random = func() int { return 42 }
			if _, err := c.ID(ctx, "third"); err == nil || !strings.Contains(err.Error(), "taken") {
				t.Fatalf("ID with every draw taken: %v", err)
			}
		})
	}
}

// TestQMQSchemaIsRefusedWithAFix: a table made by QMQ's own init_backup.sql
// lacks name_id; CheckTable says so and how to fix it.
func TestQMQSchemaIsRefusedWithAFix(t *testing.T) {
	_, dsn := testmysql.Database(t, "qmq_dic_test_")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE qmq_dic (id INT(11) UNSIGNED NOT NULL AUTO_INCREMENT, name varchar(100) NOT NULL default '', PRIMARY KEY (id), unique key uniq_idx_name(name))"); err != nil {
		t.Fatal(err)
	}
	err = CheckTable(context.Background(), db)
	if err == nil || !strings.Contains(err.Error(), "name_id") || !strings.Contains(err.Error(), "init_backup.sql") {
		t.Fatalf("CheckTable on QMQ's schema: %v", err)
	}
	// With name_id added, as the schema's comment says, the column's width
	// is still QMQ's 100: refused, with the ALTER that widens it.
	if _, err := db.Exec("ALTER TABLE qmq_dic ADD COLUMN name_id INT UNSIGNED NOT NULL, ADD UNIQUE KEY uniq_idx_name_id (name_id)"); err != nil {
		t.Fatal(err)
	}
	err = CheckTable(context.Background(), db)
	if err == nil || !strings.Contains(err.Error(), "holds 100") || !strings.Contains(err.Error(), "VARCHAR(112)") {
		t.Fatalf("CheckTable on a varchar(100) name: %v", err)
	}
	if _, err := db.Exec("ALTER TABLE qmq_dic MODIFY name VARCHAR(112) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT ''"); err != nil {
		t.Fatal(err)
	}
	if err := CheckTable(context.Background(), db); err != nil {
		t.Fatalf("CheckTable after the ALTER it names: %v", err)
	}
}

func TestSQLiteSchemaFileMatches(t *testing.T) {
	b, err := os.ReadFile("../../schema/init_backup_sqlite.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), SQLiteSchema) {
		t.Fatal("schema/init_backup_sqlite.sql does not hold dic.SQLiteSchema; keep them the same")
	}
}
