package consumerlog

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// model is what a test wrote to one subject: sequence -> entry, absent for
// blanks.
type model struct {
	entries map[int64]Entry
	max     int64 // -1: empty
	flushed int64 // max sequence at the last Flush (the "checkpoint")
}

// TestCrashRecovery writes several subjects through CrashFS with flushes at
// random points, cuts the power, and reopens. Whatever the crash kept of the
// unflushed tail, everything up to the last Flush is intact; with a torn
// tail (writes reach the disk in order) nothing wrong is ever served; and the
// owner's recovery (TruncateAfter to the checkpoint, replay) restores the
// exact content.
func TestCrashRecovery(t *testing.T) {
	optsList := []vfs.CrashOptions{
		{},
		{TornTail: true},
		{TornTail: true, UnsyncedDirOps: true},
		{ReorderedTail: true, UnsyncedDirOps: true},
		{TornTail: true, ZeroedTail: true, UnsyncedDirOps: true},
	}
	rng := rand.New(rand.NewSource(3))
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	for i := range iterations {
		opts := optsList[i%len(optsList)]
		t.Run(fmt.Sprintf("%d/%+v", i, opts), func(t *testing.T) {
			crashOnce(t, rng, opts)
		})
	}
}

func crashOnce(t *testing.T, rng *rand.Rand, opts vfs.CrashOptions) {
	dir := filepath.Join(t.TempDir(), "consumerlog")
	cfs := vfs.NewCrashFS(vfs.Default())
	// Half the runs keep one log open at a time: the others are closed
	// (unsynced: the next Flush syncs their files) and reopened as the
	// writes move between subjects.
	maxOpen := 0
	if rng.Intn(2) == 0 {
		maxOpen = 1
	}
	open := func() *Manager {
		m, err := Open(Config{FS: cfs, Dir: dir, UnitsPerSegment: 100, MaxOpenLogs: maxOpen})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	subjects := []string{"a", "%RETRY%a%g", "c/d"}
	models := map[string]*model{}
	for _, s := range subjects {
		models[s] = &model{entries: map[int64]Entry{}, max: -1, flushed: -1}
	}
	m := open()
	steps := 50 + rng.Intn(400)
	for range steps {
		s := subjects[rng.Intn(len(subjects))]
		md := models[s]
		seq := md.max + 1
		if rng.Intn(20) == 0 {
			seq += 1 + int64(rng.Intn(150)) // a gap, sometimes past a segment
		}
		e := entryFor(s, seq)
		if err := m.Put(s, seq, e); err != nil {
			t.Fatal(err)
		}
		md.entries[seq] = e
		md.max = seq
		if rng.Intn(100) == 0 {
			if err := m.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, md := range models {
				md.flushed = md.max
			}
		}
	}
	if err := cfs.Crash(rng, opts); err != nil {
		t.Fatal(err)
	}
	defer m.Close() // its handles now reach replaced files: harmless

	m2 := open()
	prefixOnly := !opts.ReorderedTail && !opts.ZeroedTail
	for _, s := range subjects {
		md := models[s]
		got := m2.MaxSequence(s)
		if got < md.flushed || got > md.max {
			t.Fatalf("%s: MaxSequence %d after crash, flushed %d, written %d", s, got, md.flushed, md.max)
		}
		limit := md.flushed
		if prefixOnly {
			limit = got // nothing torn is served
		}
		for seq := int64(0); seq <= limit; seq++ {
			e, found, err := m2.Get(s, seq)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := md.entries[seq]
			// Unflushed units may be lost (each file keeps its own prefix,
			// so holes are possible), but the recovered end is never a
			// unit the crash tore.
			if seq > md.flushed && seq < got && !found {
				continue
			}
			if found != ok || (ok && e != want) {
				t.Fatalf("%s/%d after crash: %+v found=%v, want %+v %v (flushed %d, max %d)", s, seq, e, found, want, ok, md.flushed, got)
			}
		}
	}

	// The owner's recovery: truncate to the checkpoint, replay the rest.
	for _, s := range subjects {
		md := models[s]
		if err := m2.TruncateAfter(s, md.flushed); err != nil {
			t.Fatal(err)
		}
		for seq := md.flushed + 1; seq <= md.max; seq++ {
			if e, ok := md.entries[seq]; ok {
				if err := m2.Put(s, seq, e); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	checkModels(t, m2, models)
	// Close makes everything durable: a crash right after loses nothing.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cfs.Crash(rng, vfs.CrashOptions{TornTail: true, ZeroedTail: true, UnsyncedDirOps: true}); err != nil {
		t.Fatal(err)
	}
	m3 := open()
	defer m3.Close()
	checkModels(t, m3, models)
}

func checkModels(t *testing.T, m *Manager, models map[string]*model) {
	t.Helper()
	for s, md := range models {
		if got := m.MaxSequence(s); got != md.max {
			t.Fatalf("%s: MaxSequence %d, want %d", s, got, md.max)
		}
		for seq := int64(0); seq <= md.max; seq++ {
			e, found, err := m.Get(s, seq)
			want, ok := md.entries[seq]
			if err != nil || found != ok || e != want {
				t.Fatalf("%s/%d: %+v found=%v err=%v, want %+v %v", s, seq, e, found, err, want, ok)
			}
		}
	}
}
