package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

const testSegSize = 64 << 10

// record returns n bytes that encode their own offset, so any read can be
// checked: 8-byte offset, then bytes derived from it.
func record(off int64, n int) []byte {
	b := make([]byte, n)
	fillRecord(b, off)
	return b
}

func fillRecord(b []byte, off int64) {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(off))
	copy(b, hdr[:])
	for i := 8; i < len(b); i++ {
		b[i] = byte(off) + byte(i) | 1 // never zero
	}
}

func openLog(t testing.TB, fs vfs.FS, dir string) *Log {
	t.Helper()
	l, err := Open(Config{FS: fs, Dir: dir, SegmentSize: testSegSize, Filler: func(b []byte) {
		for i := range b {
			b[i] = 0xEE
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendRecord(t testing.TB, l *Log, n int) int64 {
	t.Helper()
	want := l.WrotePosition()
	off, err := l.Append(n, func(b []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	// write again now that the offset is known (the closure could not know it
	// before a roll).
	v, err := l.Read(off, n)
	if err != nil {
		t.Fatal(err)
	}
	fillRecord(v.Bytes(), off)
	v.Release()
	if off < want {
		t.Fatalf("append at %d below previous wrote position %d", off, want)
	}
	return off
}

func checkRecord(t testing.TB, l *Log, off int64, n int) {
	t.Helper()
	v, err := l.Read(off, n)
	if err != nil {
		t.Fatalf("read %d+%d: %v", off, n, err)
	}
	defer v.Release()
	if !bytes.Equal(v.Bytes(), record(off, n)) {
		t.Fatalf("record at %d corrupted", off)
	}
}

func TestAppendReadRoll(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	defer l.Close()
	if l.WrotePosition() != 0 || l.MinOffset() != 0 || len(l.Segments()) != 0 {
		t.Fatal("new log not empty")
	}
	type rec struct {
		off int64
		n   int
	}
	var recs []rec
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		n := 1 + rng.Intn(3000)
		recs = append(recs, rec{appendRecord(t, l, n), n})
	}
	for _, r := range recs {
		checkRecord(t, l, r.off, r.n)
		if r.off/testSegSize != (r.off+int64(r.n)-1)/testSegSize {
			t.Fatalf("record %d+%d straddles segments", r.off, r.n)
		}
		if end := l.SegmentEnd(r.off); end != (r.off/testSegSize+1)*testSegSize {
			t.Fatalf("SegmentEnd(%d) = %d", r.off, end)
		}
	}
	// Fillers: the gap between a segment's last record and its end.
	for i := 1; i < len(recs); i++ {
		prevEnd := recs[i-1].off + int64(recs[i-1].n)
		if recs[i].off != prevEnd {
			if recs[i].off%testSegSize != 0 {
				t.Fatalf("gap before %d not at a segment start", recs[i].off)
			}
			gap := make([]byte, recs[i].off-prevEnd)
			if _, err := l.ReadAt(gap, prevEnd); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gap, bytes.Repeat([]byte{0xEE}, len(gap))) {
				t.Fatalf("filler at %d wrong", prevEnd)
			}
		}
	}
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	for i, s := range segs {
		if s.BaseOffset != int64(i)*testSegSize || s.Size != testSegSize || s.ModTime.IsZero() ||
			s.Path != filepath.Join(dir, fmt.Sprintf("%020d", s.BaseOffset)) {
			t.Fatalf("segment %d: %+v", i, s)
		}
		fi, err := os.Stat(s.Path)
		if err != nil || fi.Size() != testSegSize {
			t.Fatalf("segment file %s: %v %v", s.Path, fi, err)
		}
	}
	// Copying reads cross segment boundaries.
	all := make([]byte, l.WrotePosition())
	if n, err := l.ReadAt(all, 0); err != nil || n != len(all) {
		t.Fatalf("ReadAt all: %d %v", n, err)
	}
	for _, r := range recs {
		if !bytes.Equal(all[r.off:r.off+int64(r.n)], record(r.off, r.n)) {
			t.Fatalf("ReadAt: record %d wrong", r.off)
		}
	}
	if _, err := l.ReadAt(make([]byte, 10), l.WrotePosition()-5); err != io.EOF {
		t.Fatalf("ReadAt past the end: %v", err)
	}
	// Out-of-range reads.
	for _, c := range []struct {
		off int64
		n   int
	}{{-1, 1}, {l.WrotePosition() - 1, 2}, {testSegSize - 1, 2}, {0, -1}} {
		if _, err := l.Read(c.off, c.n); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Read(%d, %d) = %v", c.off, c.n, err)
		}
	}
	if _, err := l.Append(testSegSize+1, func([]byte) {}); err == nil {
		t.Fatal("append larger than a segment succeeded")
	}
	if _, err := l.Append(0, func([]byte) {}); err == nil {
		t.Fatal("empty append succeeded")
	}
	// A record of exactly one segment.
	off := appendRecord(t, l, testSegSize)
	checkRecord(t, l, off, testSegSize)
}

func TestReopenTruncate(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	var offs []int64
	for i := 0; i < 100; i++ {
		offs = append(offs, appendRecord(t, l, 1000))
	}
	validEnd := offs[80] + 1000
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(10, func([]byte) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	l = openLog(t, nil, dir)
	if got, want := l.WrotePosition(), (offs[99]/testSegSize+1)*testSegSize; got != want {
		t.Fatalf("reopened WrotePosition %d, want end of last segment %d", got, want)
	}
	checkRecord(t, l, offs[99], 1000)
	if err := l.Truncate(validEnd); err != nil {
		t.Fatal(err)
	}
	if l.WrotePosition() != validEnd {
		t.Fatalf("WrotePosition after truncate %d", l.WrotePosition())
	}
	if _, err := l.Read(offs[90], 1000); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read beyond truncation: %v", err)
	}
	if n := len(l.Segments()); int64(n) != validEnd/testSegSize+1 {
		t.Fatalf("%d segments after truncate", n)
	}
	// Appends continue at validEnd.
	next := appendRecord(t, l, 100)
	if next != validEnd {
		t.Fatalf("append after truncate at %d, want %d", next, validEnd)
	}
	l.Close()

	// Bytes after the truncation point were zeroed on disk.
	l = openLog(t, nil, dir)
	defer l.Close()
	seg := l.Segments()[len(l.Segments())-1]
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	tail := data[validEnd+100-seg.BaseOffset:]
	if !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("tail after truncation not zeroed")
	}
	for _, off := range offs[:81] {
		checkRecord(t, l, off, 1000)
	}
	// Truncate to an exact segment end, then keep appending.
	end := l.Segments()[0].BaseOffset + testSegSize
	if err := l.Truncate(end); err != nil {
		t.Fatal(err)
	}
	if len(l.Segments()) != 1 {
		t.Fatalf("segments after truncating to the first end: %d", len(l.Segments()))
	}
	if off := appendRecord(t, l, 10); off != end {
		t.Fatalf("append at %d, want %d", off, end)
	}
	if err := l.Truncate(-5); err == nil {
		t.Fatal("truncate below the log succeeded")
	}
}

func TestSetStartAndDelete(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	defer l.Close()
	start := int64(10*testSegSize + 123)
	if err := l.SetStart(start); err != nil {
		t.Fatal(err)
	}
	if l.MinOffset() != start || l.WrotePosition() != start {
		t.Fatal("SetStart not applied")
	}
	var offs []int64
	for i := 0; i < 200; i++ {
		offs = append(offs, appendRecord(t, l, 2000))
	}
	if offs[0] != start {
		t.Fatalf("first record at %d", offs[0])
	}
	if err := l.SetStart(0); err == nil {
		t.Fatal("SetStart on a non-empty log succeeded")
	}
	segs := l.Segments()
	// A view on the first segment stays valid after deletion.
	v, err := l.Read(offs[0], 2000)
	if err != nil {
		t.Fatal(err)
	}
	first := l.find(offs[0])
	n, err := l.DeleteSegmentsBefore(segs[2].BaseOffset + 1) // ends <= : only the first two
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if _, err := os.Stat(segs[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("deleted segment file still there")
	}
	if !bytes.Equal(v.Bytes(), record(offs[0], 2000)) {
		t.Fatal("pinned view changed after delete")
	}
	if first.m.Load() == nil {
		t.Fatal("pinned segment unmapped")
	}
	v.Release()
	if first.m.Load() != nil || !first.done {
		t.Fatal("deleted segment not unmapped after its last view")
	}
	if l.MinOffset() != segs[2].BaseOffset {
		t.Fatalf("MinOffset %d", l.MinOffset())
	}
	if _, err := l.Read(offs[0], 10); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read of deleted segment: %v", err)
	}
	// Never the active segment.
	n, _ = l.DeleteSegmentsBefore(1 << 60)
	if got := len(l.Segments()); got != 1 || n != len(segs)-3 {
		t.Fatalf("deleted %d, %d segments left", n, got)
	}
	checkRecord(t, l, offs[199], 2000)
}

func TestLazyMappingAndUnmapIdle(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	var offs []int64
	for i := 0; i < 100; i++ {
		offs = append(offs, appendRecord(t, l, 3000))
	}
	l.Close()
	l = openLog(t, nil, dir)
	defer l.Close()
	if err := l.Truncate(offs[99] + 3000); err != nil {
		t.Fatal(err)
	}
	segs := l.snapshot()
	for _, s := range segs[:len(segs)-1] {
		if s.m.Load() != nil {
			t.Fatal("segment mapped before use")
		}
	}
	checkRecord(t, l, offs[0], 3000)
	if segs[0].m.Load() == nil {
		t.Fatal("segment not mapped by a read")
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	v, _ := l.Read(offs[1], 3000) // pinned: must stay mapped
	if n := l.UnmapIdle(); n != 0 {
		t.Fatalf("first UnmapIdle unmapped %d recently used segments", n)
	}
	if n := l.UnmapIdle(); n != 0 {
		t.Fatalf("UnmapIdle unmapped %d pinned segments", n)
	}
	v.Release()
	if n := l.UnmapIdle(); n != 1 {
		t.Fatalf("UnmapIdle unmapped %d, want 1", n)
	}
	if segs[0].m.Load() != nil {
		t.Fatal("idle segment still mapped")
	}
	checkRecord(t, l, offs[0], 3000) // maps again
}

func TestOpenGapAndShortSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	for i := 0; i < 100; i++ {
		appendRecord(t, l, 3000)
	}
	l.Close()
	// A segment whose preallocation was lost is extended.
	last := filepath.Join(dir, fmt.Sprintf("%020d", 4*testSegSize))
	if err := os.Truncate(last, 100); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, nil, dir)
	if l.WrotePosition() != 5*testSegSize {
		t.Fatalf("WrotePosition %d", l.WrotePosition())
	}
	if err := l.Truncate(4*testSegSize + 50); err != nil {
		t.Fatal(err)
	}
	appendRecord(t, l, 1000)
	l.Close()
	if fi, _ := os.Stat(last); fi.Size() != testSegSize {
		t.Fatalf("short segment not extended: %d", fi.Size())
	}
	// A missing segment in the middle is an error.
	if err := os.Remove(filepath.Join(dir, fmt.Sprintf("%020d", 2*testSegSize))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir, SegmentSize: testSegSize}); err == nil {
		t.Fatal("open with a gap succeeded")
	}
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Fatal("open without a segment size succeeded")
	}
}

func TestErrorsPropagate(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	var failOp atomic.Value
	failOp.Store("")
	fs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if op == failOp.Load().(string) {
			return boom
		}
		return nil
	})
	l := openLog(t, fs, dir)
	defer l.Close()
	for _, op := range []string{vfs.OpOpen, vfs.OpTruncate} {
		failOp.Store(op)
		if _, err := l.Append(10, func([]byte) {}); !errors.Is(err, boom) {
			t.Fatalf("append with failing %s: %v", op, err)
		}
		if len(l.Segments()) != 0 {
			t.Fatal("failed roll left a segment")
		}
	}
	failOp.Store("")
	off := appendRecord(t, l, 10)
	for _, op := range []string{vfs.OpSync, vfs.OpSyncDir} {
		failOp.Store(op)
		if err := l.Flush(); !errors.Is(err, boom) {
			t.Fatalf("flush with failing %s: %v", op, err)
		}
		if l.FlushedPosition() != 0 {
			t.Fatal("FlushedPosition advanced on failure")
		}
	}
	failOp.Store("")
	if err := l.Flush(); err != nil || l.FlushedPosition() != off+10 {
		t.Fatalf("flush retry: %v, flushed %d", err, l.FlushedPosition())
	}
}

// TestCrashFSFlushedSurvives checks Flush against a simulated power loss:
// whatever was flushed (including newly created segments) survives, and a
// truncation is durable.
func TestCrashFSFlushedSurvives(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for iter := 0; iter < 30; iter++ {
		dir := memTempDir(t)
		cfs := vfs.NewCrashFS(vfs.Default())
		l := openLog(t, cfs, dir)
		type rec struct {
			off int64
			n   int
		}
		var flushed []rec
		var pending []rec
		for i := 0; i < 100; i++ {
			n := 1 + rng.Intn(4000)
			pending = append(pending, rec{appendRecord(t, l, n), n})
			if rng.Intn(10) == 0 {
				if err := l.Flush(); err != nil {
					t.Fatal(err)
				}
				flushed = append(flushed, pending...)
				pending = nil
			}
		}
		opts := vfs.CrashOptions{TornTail: rng.Intn(2) == 0, ZeroedTail: rng.Intn(2) == 0, ReorderedTail: rng.Intn(3) == 0}
		if err := cfs.Crash(rng, opts); err != nil {
			t.Fatal(err)
		}
		l.Close() // acts on replaced files only
		l = openLog(t, cfs, dir)
		for _, r := range flushed {
			checkRecord(t, l, r.off, r.n)
		}
		// Truncate right after the flushed records, crash again: no byte of the
		// unflushed records may come back.
		end := int64(0)
		if len(flushed) > 0 {
			end = flushed[len(flushed)-1].off + int64(flushed[len(flushed)-1].n)
		}
		if len(l.Segments()) == 0 {
			l.Close()
			continue
		}
		if err := l.Truncate(end); err != nil {
			t.Fatal(err)
		}
		if err := cfs.Crash(rng, vfs.CrashOptions{}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l = openLog(t, cfs, dir)
		segs := l.Segments()
		lastSeg := segs[len(segs)-1]
		data, err := os.ReadFile(lastSeg.Path)
		if err != nil {
			t.Fatal(err)
		}
		if end >= lastSeg.BaseOffset {
			tail := data[end-lastSeg.BaseOffset:]
			if !bytes.Equal(tail, make([]byte, len(tail))) {
				t.Fatalf("iter %d: truncated bytes came back after a crash", iter)
			}
		}
		for _, r := range flushed {
			checkRecord(t, l, r.off, r.n)
		}
		l.Close()
	}
}

// TestConcurrentReadersWhileAppendingAndDeleting runs (under -race) one
// writer, several readers of random published records, a flusher, a retention
// deleter and UnmapIdle at once.
func TestConcurrentReadersWhileAppendingAndDeleting(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, nil, dir)
	defer l.Close()
	type rec struct {
		off int64
		n   int
	}
	var (
		mu   sync.Mutex
		recs []rec
		done = make(chan struct{})
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer close(done)
		rng := rand.New(rand.NewSource(1))
		deadline := time.Now().Add(700 * time.Millisecond)
		for time.Now().Before(deadline) {
			n := 16 + rng.Intn(2000)
			var at int64 = -1
			off, err := l.Append(n, func(b []byte) {
				at = l.WrotePosition() // Append publishes after write returns
				if at+int64(n) > (at/testSegSize+1)*testSegSize {
					at = (at/testSegSize + 1) * testSegSize
				}
				fillRecord(b, at)
			})
			if err != nil {
				errs <- err
				return
			}
			if off != at {
				errs <- fmt.Errorf("append at %d, closure saw %d", off, at)
				return
			}
			mu.Lock()
			recs = append(recs, rec{off, n})
			mu.Unlock()
		}
	}()
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(seed int64) { // readers
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				if len(recs) == 0 {
					mu.Unlock()
					continue
				}
				rc := recs[rng.Intn(len(recs))]
				if rng.Intn(2) == 0 {
					rc = recs[len(recs)-1]
				}
				mu.Unlock()
				v, err := l.Read(rc.off, rc.n)
				if errors.Is(err, ErrOutOfRange) || errors.Is(err, ErrDeleted) {
					continue // deleted by retention
				}
				if err != nil {
					errs <- err
					return
				}
				if rng.Intn(4) == 0 {
					time.Sleep(time.Millisecond) // hold the view across a deletion
				}
				if !bytes.Equal(v.Bytes(), record(rc.off, rc.n)) {
					errs <- fmt.Errorf("record at %d corrupted", rc.off)
				}
				v.Release()
			}
		}(int64(r))
	}
	wg.Add(1)
	go func() { // flusher, retention, idle unmapping
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := l.Flush(); err != nil {
				errs <- err
				return
			}
			l.UnmapIdle()
			if segs := l.Segments(); len(segs) > 4 {
				if _, err := l.DeleteSegmentsBefore(segs[len(segs)-4].BaseOffset); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(recs) < 1000 {
		t.Fatalf("only %d appends", len(recs))
	}
}

func TestReadDoesNotAllocate(t *testing.T) {
	l := openLog(t, nil, t.TempDir())
	defer l.Close()
	var offs []int64
	for i := 0; i < 200; i++ {
		offs = append(offs, appendRecord(t, l, 1000))
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		v, err := l.Read(offs[i%len(offs)], 1000)
		if err != nil {
			t.Fatal(err)
		}
		v.Release()
		i++
	})
	if allocs != 0 {
		t.Fatalf("Read allocates %.1f times", allocs)
	}
}

func TestCloseKeepsViewsValid(t *testing.T) {
	l := openLog(t, nil, t.TempDir())
	off := appendRecord(t, l, 100)
	v, err := l.Read(off, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Bytes(), record(off, 100)) {
		t.Fatal("view changed after Close")
	}
	v.Release()
	if err := l.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, nil, b.TempDir())
	defer l.Close()
	var offs []int64
	for i := 0; i < 1000; i++ {
		offs = append(offs, appendRecord(b, l, 1024))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := l.Read(offs[i%len(offs)], 1024)
		if err != nil {
			b.Fatal(err)
		}
		v.Release()
	}
}

// memTempDir is a temporary directory on tmpfs when there is one: CrashFS
// decides what survives a crash, so real fsyncs would only slow tests down.
func memTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "qmq-segment-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestClearNonZero(t *testing.T) {
	b := make([]byte, 3*4096+100)
	b[5000] = 1
	b[len(b)-1] = 2
	clearNonZero(b[10:])
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("not cleared")
	}
}
