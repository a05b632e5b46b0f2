package vfs

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/edsrzf/mmap-go"
)

func writeFile(t *testing.T, fs FS, path string, data []byte, sync bool) File {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestDefaultFS(t *testing.T) {
	dir := t.TempDir()
	fs := Default()
	if err := fs.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a", "b", "f")
	f := writeFile(t, fs, p, []byte("hello"), true)
	if f.OSFile() == nil || f.Name() != p {
		t.Fatalf("OSFile/Name wrong: %v %q", f.OSFile(), f.Name())
	}
	buf := make([]byte, 5)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 2 {
		t.Fatalf("Stat = %v, %v", fi, err)
	}
	f.Close()
	if err := fs.SyncDir(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	q := p + ".renamed"
	if err := fs.Rename(p, q); err != nil {
		t.Fatal(err)
	}
	ents, err := fs.ReadDir(filepath.Dir(p))
	if err != nil || len(ents) != 1 || ents[0].Name() != "f.renamed" {
		t.Fatalf("ReadDir = %v, %v", ents, err)
	}
	if _, err := fs.Stat(q); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(q); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(q); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat after remove: %v", err)
	}
	if err := fs.SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func TestErrorFS(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	failing := map[string]bool{}
	fs := NewErrorFS(Default(), func(op, path string) error {
		if failing[op] {
			return boom
		}
		return nil
	})
	p := filepath.Join(dir, "f")
	f := writeFile(t, fs, p, []byte("abc"), true)
	defer f.Close()
	for _, tc := range []struct {
		op   string
		call func() error
	}{
		{OpWrite, func() error { _, err := f.Write([]byte("x")); return err }},
		{OpWrite, func() error { _, err := f.WriteAt([]byte("x"), 0); return err }},
		{OpRead, func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }},
		{OpRead, func() error { _, err := f.Read(make([]byte, 1)); return err }},
		{OpSync, f.Sync},
		{OpTruncate, func() error { return f.Truncate(0) }},
		{OpStat, func() error { _, err := f.Stat(); return err }},
		{OpStat, func() error { _, err := fs.Stat(p); return err }},
		{OpOpen, func() error { _, err := fs.OpenFile(p, os.O_RDONLY, 0); return err }},
		{OpRename, func() error { return fs.Rename(p, p+"2") }},
		{OpRemove, func() error { return fs.Remove(p + "2") }},
		{OpSyncDir, func() error { return fs.SyncDir(dir) }},
		{OpMkdir, func() error { return fs.MkdirAll(filepath.Join(dir, "d"), 0o755) }},
		{OpReadDir, func() error { _, err := fs.ReadDir(dir); return err }},
	} {
		failing[tc.op] = true
		if err := tc.call(); !errors.Is(err, boom) {
			t.Errorf("%s: err = %v, want injected", tc.op, err)
		}
		failing[tc.op] = false
		if err := tc.call(); errors.Is(err, boom) {
			t.Errorf("%s: still failing", tc.op)
		}
	}
	if exists(p) || exists(p+"2") || !exists(filepath.Join(dir, "d")) {
		t.Fatal("operations did not reach the base FS")
	}
}

func TestCrashFSUnsyncedDataLost(t *testing.T) {
	dir := t.TempDir()
	c := NewCrashFS(Default())
	p := filepath.Join(dir, "f")
	f := writeFile(t, c, p, []byte("synced"), true)
	if err := c.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("-unsynced")); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, p); string(got) != "synced" {
		t.Fatalf("after crash %q, want %q", got, "synced")
	}
	// The old handle reaches the replaced inode only.
	if _, err := f.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, ErrStaleHandle) {
		t.Fatalf("stale Sync = %v", err)
	}
	f.Close()
	if got := mustRead(t, p); string(got) != "synced" {
		t.Fatalf("stale handle changed the file: %q", got)
	}
}

func TestCrashFSDirectoryEntries(t *testing.T) {
	dir := t.TempDir()
	c := NewCrashFS(Default())
	kept := filepath.Join(dir, "kept")
	writeFile(t, c, kept, []byte("k"), true).Close()
	removed := filepath.Join(dir, "removed")
	writeFile(t, c, removed, []byte("r"), true).Close()
	renamed := filepath.Join(dir, "old")
	writeFile(t, c, renamed, []byte("o"), true).Close()
	if err := c.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	unsyncedNew := filepath.Join(dir, "new")
	writeFile(t, c, unsyncedNew, []byte("n"), true).Close() // content synced, entry not
	if err := c.Remove(removed); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(renamed, filepath.Join(dir, "renamed")); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	if exists(unsyncedNew) || exists(filepath.Join(dir, "renamed")) {
		t.Fatal("unsynced directory entries survived")
	}
	if string(mustRead(t, removed)) != "r" || string(mustRead(t, renamed)) != "o" || string(mustRead(t, kept)) != "k" {
		t.Fatal("durable entries not restored")
	}

	// Once the directory is synced, the changes stay.
	if err := c.Rename(renamed, filepath.Join(dir, "renamed")); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(removed); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	if exists(removed) || exists(renamed) || string(mustRead(t, filepath.Join(dir, "renamed"))) != "o" {
		t.Fatal("synced directory changes lost")
	}
}

func TestCrashFSUnsyncedDirOpsPrefix(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		dir := t.TempDir()
		c := NewCrashFS(Default())
		tmp, final := filepath.Join(dir, "cp.tmp"), filepath.Join(dir, "cp.1")
		writeFile(t, c, tmp, []byte("cp"), true).Close()
		if err := c.Rename(tmp, final); err != nil {
			t.Fatal(err)
		}
		if err := c.Crash(rand.New(rand.NewSource(seed)), CrashOptions{UnsyncedDirOps: true}); err != nil {
			t.Fatal(err)
		}
		// Possible prefixes: nothing; tmp created; tmp created+removed, cp.1 not yet (ops of one rename are
		// split in remove-old then add-new); everything.
		a, b := exists(tmp), exists(final)
		if a && b {
			t.Fatalf("seed %d: both names exist after a rename", seed)
		}
		if b && string(mustRead(t, final)) != "cp" {
			t.Fatalf("seed %d: renamed file lost its synced content", seed)
		}
	}
}

func TestCrashFSMmapWritesCountAtSync(t *testing.T) {
	dir := t.TempDir()
	c := NewCrashFS(Default())
	p := filepath.Join(dir, "seg")
	f, err := c.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8192); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	m, err := mmap.Map(f.OSFile(), mmap.RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, "durable")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	copy(m[4096:], "lost")
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old mapping now points at the replaced inode.
	copy(m[100:], "after crash")
	m.Unmap()
	f.Close()
	got := mustRead(t, p)
	want := make([]byte, 8192)
	copy(want, "durable")
	if !bytes.Equal(got, want) {
		t.Fatalf("after crash got %q..., want %q...", got[:16], want[:16])
	}
}

// TestCrashFSTornAndZeroedTails checks the invariants of every data-loss mode:
// synced bytes are never changed, every other byte is either its old value,
// its new value or zero, and torn tails keep a prefix in sector order.
func TestCrashFSTornAndZeroedTails(t *testing.T) {
	const sector = 512
	rng := rand.New(rand.NewSource(7))
	for iter := 0; iter < 200; iter++ {
		opts := CrashOptions{
			TornTail:      rng.Intn(2) == 0,
			ReorderedTail: rng.Intn(3) == 0,
			ZeroedTail:    rng.Intn(2) == 0,
		}
		dir := t.TempDir()
		c := NewCrashFS(Default())
		p := filepath.Join(dir, "f")
		syncedLen := rng.Intn(5000)
		synced := make([]byte, syncedLen)
		rng.Read(synced)
		f := writeFile(t, c, p, synced, true)
		if err := c.SyncDir(dir); err != nil {
			t.Fatal(err)
		}
		extra := make([]byte, 1+rng.Intn(8000))
		for i := range extra {
			extra[i] = byte(1 + rng.Intn(255)) // never zero, so zeroing is visible
		}
		if _, err := f.WriteAt(extra, int64(syncedLen)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := c.Crash(rng, opts); err != nil {
			t.Fatal(err)
		}
		got := mustRead(t, p)
		full := append(append([]byte{}, synced...), extra...)
		firstSector := syncedLen / sector * sector
		if len(got) != syncedLen && len(got) != len(full) {
			t.Fatalf("iter %d: size %d, want %d or %d", iter, len(got), syncedLen, len(full))
		}
		if !bytes.Equal(got[:min(len(got), firstSector)], synced[:min(len(got), firstSector)]) {
			t.Fatalf("iter %d: synced sectors changed", iter)
		}
		seenLost := false
		for s := firstSector; s < len(got); s += sector {
			hi := min(s+sector, len(got))
			kept := bytes.Equal(got[s:hi], full[s:hi])
			zero := bytes.Count(got[s:hi], []byte{0}) == hi-s
			old := bytes.Equal(got[s:hi], padTo(synced, int64(len(got)))[s:hi])
			if !kept && !zero && !old {
				t.Fatalf("iter %d (%+v): sector at %d is neither new, old nor zero", iter, opts, s)
			}
			if opts.TornTail && !opts.ReorderedTail && !opts.ZeroedTail {
				if !kept {
					seenLost = true
				} else if seenLost && !old {
					t.Fatalf("iter %d: torn tail is not a prefix", iter)
				}
			}
		}
	}
}

func TestCrashFSAdoptsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pre")
	if err := os.WriteFile(p, []byte("existing"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCrashFS(Default())
	f, err := c.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("EXIST"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, p); string(got) != "existing" {
		t.Fatalf("got %q", got)
	}
	// Write-only opens still work (upgraded to read-write for the snapshot).
	f, err = c.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := c.Crash(rand.New(rand.NewSource(1)), CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, p); string(got) != "existing+more" {
		t.Fatalf("got %q", got)
	}
	r, err := c.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, _ := io.ReadAll(r); string(b) != "existing+more" {
		t.Fatalf("read %q", b)
	}
}
