package messagelog

import (
	"context"
	"errors"
	"hash/crc32"
	"math/rand"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/storage/vfs"
)

// TestFullDiskThenCrash: appends refused because the disk cannot allocate
// the next segment take no sequence and leave nothing that breaks recovery,
// even when a power loss follows (CrashFS keeps any prefix of the unsynced
// create and remove of the refused segment's file). After the restart the
// log holds every flushed record, sequences continue and the roll works.
func TestFullDiskThenCrash(t *testing.T) {
	for seed := int64(1); seed <= int64(iterations(8, 200)); seed++ {
		rng := rand.New(rand.NewSource(seed))
		dir := memTempDir(t)
		cfs := vfs.NewCrashFS(vfs.Default())
		var full atomic.Bool
		fs := vfs.NewErrorFS(cfs, func(op, path string) error {
			if op == vfs.OpAllocate && full.Load() {
				return syscall.ENOSPC
			}
			return nil
		})
		const segSize = 16 << 10
		l := openTest(t, Config{FS: fs, Dir: dir, SegmentSize: segSize}, Start{})
		var durable []written
		for l.seg.SegmentCount() < 2 || l.WrotePosition()+4000 < l.seg.SegmentEnd(l.WrotePosition()-1) {
			durable = append(durable, appendRandom(t, l, rng, crashSubjects, 1)...)
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		full.Store(true)
		next := map[string]int64{}
		for _, s := range crashSubjects {
			next[s] = l.NextSequence(s)
		}
		refused := 0
		for i := 0; i < 20; i++ {
			s := crashSubjects[rng.Intn(len(crashSubjects))]
			p := payloadFor(s, rng.Int63(), 1+rng.Intn(4000))
			out, err := l.Append(context.Background(), []Message{{Subject: s, Payload: p}})
			if err == nil { // it fit the active segment's tail
				durable = append(durable, written{Appended: out[0], subject: s, crc: crc32.ChecksumIEEE(p)})
				next[s]++
				continue
			}
			if !errors.Is(err, diskspace.ErrFull) {
				t.Fatalf("seed %d: append on a full disk: %v", seed, err)
			}
			refused++
		}
		if refused == 0 {
			t.Fatalf("seed %d: no append was refused", seed)
		}
		for s, want := range next {
			if got := l.NextSequence(s); got != want {
				t.Fatalf("seed %d: refused appends moved %s's next sequence to %d, want %d", seed, s, got, want)
			}
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := cfs.Crash(rng, vfs.CrashOptions{UnsyncedDirOps: true, TornTail: rng.Intn(2) == 0}); err != nil {
			t.Fatal(err)
		}
		l.Close()

		full.Store(false)
		l = openTest(t, Config{FS: fs, Dir: dir, SegmentSize: segSize}, Start{})
		for _, w := range durable {
			checkWritten(t, l, w)
		}
		checkLog(t, l)
		for i := 0; i < 10; i++ { // past the refused roll
			appendRandom(t, l, rng, crashSubjects, 1)
		}
		checkLog(t, l)
		l.Close()
	}
}
