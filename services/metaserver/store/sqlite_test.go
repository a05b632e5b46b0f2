package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func openTestSQLite(t *testing.T) Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "dir", "meta.db") // parents are created
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteStore(t *testing.T) {
	runStoreSuite(t, openTestSQLite)
}

func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.InsertSubjectRoute(ctx, "kept", []string{"g1"}))
	must(t, s.Close())

	// Applying the schema again is harmless and keeps the data.
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, ok, err := s.GetSubjectRoute(ctx, "kept")
	if err != nil || !ok || r.Version != 1 {
		t.Fatalf("GetSubjectRoute after reopen = %+v, %v, %v", r, ok, err)
	}
	var mode string
	must(t, rawDB(s).QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var timeout int
	must(t, rawDB(s).QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout))
	if timeout <= 0 {
		t.Errorf("busy_timeout = %d, want > 0", timeout)
	}
	// Times are stored as UTC text in the format of SQLite's CURRENT_TIMESTAMP.
	var ut string
	must(t, rawDB(s).QueryRowContext(ctx, "SELECT update_time FROM subject_route").Scan(&ut))
	if len(ut) != len("2006-01-02 15:04:05") {
		t.Errorf("stored update_time %q, want YYYY-MM-DD HH:MM:SS", ut)
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenSQLite(ctx, ""); err == nil {
		t.Error("OpenSQLite(\"\") succeeded")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	if _, err := OpenSQLite(ctx, filepath.Join(file, "meta.db")); err == nil {
		t.Error("OpenSQLite under a regular file succeeded")
	}
	notDB := filepath.Join(dir, "not.db")
	must(t, os.WriteFile(notDB, []byte("this is not a database, just some text that is long enough"), 0o644))
	if _, err := OpenSQLite(ctx, notDB); err == nil {
		t.Error("OpenSQLite of a text file succeeded")
	}
}
