package hbasestore

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/backup/storetest"
)

var ctx = context.Background()

// open returns a store on a fresh fake gateway with its tables created and
// a SQLite dictionary, as production has a SQL one.
func open(t *testing.T, mod func(*Settings)) (*Store, *hbasetest.Server) {
	t.Helper()
	srv := hbasetest.Start(t)
	db, err := dic.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := dic.NewSQL(db, dic.SQLite, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := DefaultSettings()
	s.RestURL = srv.URL()
	s.ScanBatch = 7 // several scanner batches per page
	if mod != nil {
		mod(&s)
	}
	st, err := New(s, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	return st, srv
}

func TestConformance(t *testing.T) {
	var servers []*hbasetest.Server
	storetest.Run(t, func(t *testing.T) backup.Store {
		st, srv := open(t, nil)
		servers = append(servers, srv)
		t.Cleanup(func() {
			if n := srv.OpenScanners(); n != 0 {
				t.Errorf("%d scanners left open on the gateway", n)
			}
		})
		return st
	})
}

func TestCreateTables(t *testing.T) {
	srv := hbasetest.Start(t)
	s := DefaultSettings()
	s.RestURL, s.RetentionDays = srv.URL(), 7
	created, err := CreateTablesAt(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := "qmq_backup,qmq_backup_record,qmq_backup_dead,qmq_backup_dead_content,qmq_backup_detail"
	if strings.Join(created, ",") != want {
		t.Fatalf("created %v, want %s", created, want)
	}
	if f := srv.Family("qmq_backup_record", "i"); f == nil || f["TTL"] != "604800" {
		t.Fatalf("qmq_backup_record family i: %v, want TTL 604800", f)
	}
	if f := srv.Family("qmq_backup", "m"); f == nil {
		t.Fatal("qmq_backup has no family m")
	}
	if again, err := CreateTablesAt(ctx, s); err != nil || len(again) != 0 {
		t.Fatalf("second run created %v, %v; want nothing", again, err)
	}
}

func TestMissingTableIsNamed(t *testing.T) {
	srv := hbasetest.Start(t)
	db, _ := dic.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	defer db.Close()
	d, _ := dic.NewSQL(db, dic.SQLite, "test")
	s := DefaultSettings()
	s.RestURL = srv.URL()
	st, err := New(s, d)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.PutMessages(ctx, []backup.Message{{Subject: "s", MessageID: "m", BrokerGroup: "bg", CreateTime: time.Now()}})
	if err == nil || !strings.Contains(err.Error(), "qmq_backup does not exist") || errors.Is(err, backup.ErrUnavailable) {
		t.Fatalf("put without tables: %v", err)
	}
}

func put(st *Store) error {
	return st.PutMessages(ctx, []backup.Message{{Subject: "s", MessageID: "m", BrokerGroup: "bg", Sequence: 1, CreateTime: time.Now().Add(-time.Minute)}})
}

func find(st *Store) error {
	_, err := st.FindMessages(ctx, backup.MessageQuery{Subject: "s", Len: 10})
	return err
}

// TestGatewayFailuresAreUnavailable: down, 5xx and slow all wrap
// ErrUnavailable (the follower retries), and the store works again after.
func TestGatewayFailuresAreUnavailable(t *testing.T) {
	st, srv := open(t, func(s *Settings) { s.Timeout = 300 * time.Millisecond })
	defer st.Close()
	if err := put(st); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		start := time.Now()
		for name, op := range map[string]func(*Store) error{"put": put, "find": find} {
			err := op(st)
			if !errors.Is(err, backup.ErrUnavailable) {
				t.Errorf("%s with the gateway %s: %v; want ErrUnavailable", name, what, err)
			}
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("with the gateway %s two calls took %s; the timeout is 300ms", what, d)
		}
	}
	srv.Fail(http.StatusServiceUnavailable)
	check("answering 503")
	srv.Fail(http.StatusInternalServerError)
	check("answering 500")
	srv.Fail(0)
	srv.Delay(time.Second)
	check("slower than the timeout")
	srv.Delay(0)
	srv.Down()
	check("down")
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	if err := find(st); err != nil {
		t.Fatalf("after the gateway came back: %v", err)
	}
	if n := srv.OpenScanners(); n != 0 {
		t.Fatalf("%d scanners left open", n)
	}
}

// TestScannerDeletedWhenScanStopsEarly: a page that ends before the rows do
// still deletes its scanner.
func TestScannerDeletedWhenScanStopsEarly(t *testing.T) {
	st, srv := open(t, nil)
	defer st.Close()
	var msgs []backup.Message
	at := time.Now().Add(-time.Hour)
	for i := range 50 {
		msgs = append(msgs, backup.Message{Subject: "s", MessageID: "m" + string(rune('A'+i)), BrokerGroup: "bg", Sequence: int64(i), CreateTime: at.Add(time.Duration(i) * time.Second)})
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	p, err := st.FindMessages(ctx, backup.MessageQuery{Subject: "s", Len: 3})
	if err != nil || len(p.Messages) != 3 || p.Next == "" {
		t.Fatalf("page: %+v, %v", p, err)
	}
	if n := srv.OpenScanners(); n != 0 {
		t.Fatalf("%d scanners left open after an early stop", n)
	}
}
