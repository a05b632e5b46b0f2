package checkpoint

import (
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

var errInjectedCrash = errors.New("injected: power lost here")

// TestCrashDuringSave cuts power at every file-system operation of a save
// (the operation fails, then CrashFS throws away what was not synced, with
// every kind of unsynced leftover) and checks that a valid checkpoint is
// always loadable: the previous one, or the new one. A save that returned
// nil must survive any crash.
func TestCrashDuringSave(t *testing.T) {
	opts := []vfs.CrashOptions{
		{},
		{TornTail: true, UnsyncedDirOps: true},
		{ReorderedTail: true, UnsyncedDirOps: true},
		{ZeroedTail: true, TornTail: true, UnsyncedDirOps: true},
	}
	rng := rand.New(rand.NewSource(1))
	for _, kind := range []string{MessageKind, ActionKind} {
		for failAt := 0; failAt < 12; failAt++ {
			for oi, opt := range opts {
				t.Run(fmt.Sprintf("%s/op%d/opts%d", kind, failAt, oi), func(t *testing.T) {
					crashSaveOnce(t, rng, kind, failAt, opt)
				})
			}
		}
	}
}

func crashSaveOnce(t *testing.T, rng *rand.Rand, kind string, failAt int, opt vfs.CrashOptions) {
	dir := filepath.Join(t.TempDir(), "checkpoint")
	cfs := vfs.NewCrashFS(vfs.Default())
	const retain = 2
	save := func(fs vfs.FS, offset int64) error {
		if kind == MessageKind {
			return SaveMessage(fs, dir, MessageCheckpoint{Offset: offset, MaxSequences: map[string]int64{"s": offset * 10}}, retain)
		}
		return SaveAction(fs, dir, ActionCheckpoint{Offset: offset, Data: []byte(fmt.Sprint("table at ", offset))}, retain)
	}
	load := func() (int64, error) {
		if kind == MessageKind {
			cp, found, err := LoadMessage(cfs, dir)
			if err == nil && !found {
				err = errors.New("no checkpoint")
			}
			if err == nil && cp.MaxSequences["s"] != cp.Offset*10 {
				err = fmt.Errorf("content mismatch: %+v", cp)
			}
			return cp.Offset, err
		}
		cp, found, err := LoadAction(cfs, dir)
		if err == nil && !found {
			err = errors.New("no checkpoint")
		}
		if err == nil && string(cp.Data) != fmt.Sprint("table at ", cp.Offset) {
			err = fmt.Errorf("content mismatch: %+v", cp)
		}
		return cp.Offset, err
	}

	// Three durable saves, enough for pruning to be part of the next save.
	for off := int64(1); off <= 3; off++ {
		if err := save(cfs, off); err != nil {
			t.Fatal(err)
		}
	}
	ops := 0
	efs := vfs.NewErrorFS(cfs, func(op, path string) error {
		ops++
		if ops-1 == failAt {
			return errInjectedCrash
		}
		return nil
	})
	err := save(efs, 4)
	if err != nil && !errors.Is(err, errInjectedCrash) {
		t.Fatalf("save: %v", err)
	}
	if err := cfs.Crash(rng, opt); err != nil {
		t.Fatal(err)
	}
	got, lerr := load()
	if lerr != nil {
		t.Fatalf("after crash at op %d (save err %v): %v", failAt, err, lerr)
	}
	switch {
	case err == nil && got != 4:
		t.Fatalf("save returned nil but offset %d was loaded after the crash", got)
	case got != 3 && got != 4:
		t.Fatalf("loaded offset %d, want 3 or 4", got)
	}
	// The store keeps working after the crash, and retention catches up
	// with any file the crash resurrected.
	if err := save(cfs, 5); err != nil {
		t.Fatal(err)
	}
	if got, err := load(); err != nil || got != 5 {
		t.Fatalf("after recovery save: %d %v", got, err)
	}
	if n := len(checkpointFiles(t, dir, kind)); n != retain {
		t.Fatalf("%d files kept, want %d", n, retain)
	}
}

// TestRandomCrashes interleaves saves and crashes at random points.
func TestRandomCrashes(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	dir := filepath.Join(t.TempDir(), "checkpoint")
	cfs := vfs.NewCrashFS(vfs.Default())
	durable := int64(-1) // newest offset whose save returned nil
	for i := int64(0); i < 300; i++ {
		failAt := rng.Intn(16)
		ops := 0
		efs := vfs.NewErrorFS(cfs, func(op, path string) error {
			ops++
			if ops-1 == failAt {
				return errInjectedCrash
			}
			return nil
		})
		err := SaveMessage(efs, dir, MessageCheckpoint{Offset: i}, 1+rng.Intn(4))
		if err == nil {
			durable = i
		}
		if rng.Intn(3) == 0 {
			if err := cfs.Crash(rng, vfs.CrashOptions{TornTail: true, ZeroedTail: rng.Intn(2) == 0, UnsyncedDirOps: true}); err != nil {
				t.Fatal(err)
			}
		}
		cp, found, lerr := LoadMessage(cfs, dir)
		if durable < 0 {
			continue
		}
		if lerr != nil || !found {
			t.Fatalf("step %d: found=%v err=%v", i, found, lerr)
		}
		if cp.Offset < durable || cp.Offset > i {
			t.Fatalf("step %d: loaded offset %d, durable %d", i, cp.Offset, durable)
		}
	}
}
