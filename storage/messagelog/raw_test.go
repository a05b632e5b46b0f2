package messagelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/qmq-go/qmq/storage/segment"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// copyRaw copies master's bytes into replica until it has everything,
// reading at most max bytes at a time. It returns the number of reads.
func copyRaw(t testing.TB, master, replica *Log, max int) int {
	t.Helper()
	reads := 0
	for {
		off := replica.WrotePosition()
		v, n, err := master.ReadRaw(off, max)
		if err != nil {
			t.Fatalf("read raw at %d: %v", off, err)
		}
		if n == 0 {
			return reads
		}
		reads++
		end, err := replica.AppendRaw(off, v.Bytes()[:n])
		v.Release()
		if err != nil {
			t.Fatalf("append raw at %d (%d bytes): %v", off, n, err)
		}
		if end <= off {
			t.Fatalf("append raw at %d (%d bytes) made no progress", off, n)
		}
	}
}

// sameFiles fails unless the two directories hold the same segment files
// with the same bytes.
func sameFiles(t testing.TB, a, b string) {
	t.Helper()
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			if len(e.Name()) == 20 {
				out = append(out, e.Name())
			}
		}
		return out
	}
	na, nb := names(a), names(b)
	if len(na) != len(nb) {
		t.Fatalf("segment files differ: %v vs %v", na, nb)
	}
	for i := range na {
		if na[i] != nb[i] {
			t.Fatalf("segment files differ: %v vs %v", na, nb)
		}
		ba, err := os.ReadFile(filepath.Join(a, na[i]))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(b, nb[i]))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			j := 0
			for j < min(len(ba), len(bb)) && ba[j] == bb[j] {
				j++
			}
			t.Fatalf("segment %s differs at byte %d (sizes %d, %d)", na[i], j, len(ba), len(bb))
		}
	}
}

func TestRawCopyIsByteIdentical(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	subjects := []string{"a", "order.changed", "%RETRY%x%g"}
	master := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer master.Close()
	replica := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer replica.Close()
	for _, max := range []int{1, 1000, 100000} {
		for range 40 {
			appendRandom(t, master, rng, subjects, 1+rng.Intn(5))
		}
		copyRaw(t, master, replica, max)
	}
	if segCount(master) < 4 {
		t.Fatalf("only %d segments: the test must cross segment ends", segCount(master))
	}
	if replica.WrotePosition() != master.WrotePosition() {
		t.Fatalf("replica ends at %d, master at %d", replica.WrotePosition(), master.WrotePosition())
	}
	sameFiles(t, master.cfg.Dir, replica.cfg.Dir)
	if got, want := replica.MaxSequences(), master.MaxSequences(); !mapsEqual(got, want) {
		t.Fatalf("replica sequences %v, master %v", got, want)
	}
	checkLog(t, replica)
	// The replica continues the master's sequences.
	out, err := replica.Append(t.Context(), []Message{{Subject: "a", Payload: []byte("x")}})
	if err != nil || out[0].Sequence != master.NextSequence("a") {
		t.Fatalf("append after copy: %+v, %v (want sequence %d)", out, err, master.NextSequence("a"))
	}
}

func segCount(l *Log) int { return l.seg.SegmentCount() }

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRawStartAtMasterOldestSegment(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	master := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer master.Close()
	for range 60 {
		appendRandom(t, master, rng, []string{"a", "b"}, 3)
	}
	segs := master.Segments()
	if _, err := master.DeleteSegmentsBefore(segs[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if got := master.ReplicableStart(); got != segs[2].BaseOffset {
		t.Fatalf("replicable start %d, want %d", got, segs[2].BaseOffset)
	}
	if _, _, err := master.ReadRaw(0, 100); !errors.Is(err, segment.ErrBeforeStart) {
		t.Fatalf("read before start: %v", err)
	}
	if _, _, err := master.ReadRaw(master.WrotePosition()+1, 100); !errors.Is(err, segment.ErrBeyondEnd) {
		t.Fatalf("read beyond end: %v", err)
	}

	dir := t.TempDir()
	replica := openTest(t, Config{Dir: dir}, Start{})
	if !replica.Empty() {
		t.Fatal("new log not empty")
	}
	if err := replica.SetStart(master.ReplicableStart()); err != nil {
		t.Fatal(err)
	}
	copyRaw(t, master, replica, 5000)
	sameFiles(t, master.cfg.Dir, dir)
	if err := replica.SetStart(0); !errors.Is(err, segment.ErrNotEmpty) {
		t.Fatalf("SetStart on a non-empty log: %v", err)
	}
	// Sequences of records the replica never saw come from RaiseSequences.
	_, snap := master.SequenceSnapshot()
	snap["gone"] = 41
	replica.RaiseSequences(snap)
	if got := replica.NextSequence("gone"); got != 42 {
		t.Fatalf("raised sequence: %d", got)
	}
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the copy recovers like any log.
	replica = openTest(t, Config{Dir: dir}, Start{})
	defer replica.Close()
	if replica.WrotePosition() != master.WrotePosition() || replica.MinOffset() != segs[2].BaseOffset {
		t.Fatalf("reopened replica spans [%d, %d), master [%d, %d)", replica.MinOffset(), replica.WrotePosition(),
			master.MinOffset(), master.WrotePosition())
	}
	if n := iterateAll(t, replica); n == 0 {
		t.Fatal("no records in the copy")
	}
}

// iterateAll reads every record and fails unless the iterator reaches the end.
func iterateAll(t testing.TB, l *Log) int {
	t.Helper()
	it := l.Iterate(0)
	defer it.Close()
	n := 0
	for {
		if _, ok := it.Next(); !ok {
			break
		}
		n++
	}
	if it.Err() != nil || it.Offset() != l.WrotePosition() {
		t.Fatalf("iteration stopped at %d of %d: %v", it.Offset(), l.WrotePosition(), it.Err())
	}
	return n
}

func TestRawAppendRejects(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	master := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer master.Close()
	appendRandom(t, master, rng, []string{"a"}, 5)
	v, n, err := master.ReadRaw(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(v.Bytes()[:n])
	v.Release()

	replica := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer replica.Close()
	var mismatch *segment.OffsetMismatchError
	if _, err := replica.AppendRaw(10, good); !errors.As(err, &mismatch) || mismatch.End != 0 || mismatch.Offset != 10 {
		t.Fatalf("append at the wrong offset: %v", err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1 // last payload byte: CRC mismatch in the last record
	if _, err := replica.AppendRaw(0, bad); !errors.Is(err, ErrBadCRC) {
		t.Fatalf("corrupt bytes: %v", err)
	}
	if replica.WrotePosition() != 0 || !replica.Empty() {
		t.Fatal("corrupt bytes were partly appended")
	}
	// A record cut short is left for the next call.
	end, err := replica.AppendRaw(0, good[:len(good)-3])
	if err != nil || end <= 0 || end >= int64(len(good)) {
		t.Fatalf("partial: end %d, %v", end, err)
	}
	end2, err := replica.AppendRaw(end, good[end:])
	if err != nil || end2 != int64(len(good)) {
		t.Fatalf("rest: end %d, %v", end2, err)
	}
	// A record that would cross this log's segment end: the master's
	// segments are larger.
	big := openTest(t, Config{Dir: t.TempDir(), SegmentSize: 4 * testSegSize}, Start{})
	defer big.Close()
	for big.WrotePosition() < 2*testSegSize {
		appendRandom(t, big, rng, []string{"a"}, 4)
	}
	small := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer small.Close()
	var lastErr error
	for range 1000 {
		off := small.WrotePosition()
		v, n, err := big.ReadRaw(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		_, lastErr = small.AppendRaw(off, v.Bytes()[:n])
		v.Release()
		if lastErr != nil {
			break
		}
	}
	if lastErr == nil || !bytes.Contains([]byte(lastErr.Error()), []byte("messagelog.segment.size")) {
		t.Fatalf("segment size mismatch: %v", lastErr)
	}
}

func TestRawReadRespectsMax(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	ws := appendRandom(t, l, rng, []string{"a"}, 10)
	v, n, err := l.ReadRaw(0, 1) // smaller than a record: one record anyway
	if err != nil || n != int(ws[0].Size) {
		t.Fatalf("read with max 1: %d, %v (first record %d)", n, err, ws[0].Size)
	}
	v.Release()
	max := int(ws[0].Size + ws[1].Size + ws[2].Size/2)
	v, n, err = l.ReadRaw(0, max)
	if err != nil || n != int(ws[0].Size+ws[1].Size) {
		t.Fatalf("read with max %d: %d, %v", max, n, err)
	}
	v.Release()
	if ts, ok := l.TimestampAt(ws[3].Offset); !ok || ts != ws[3].Timestamp {
		t.Fatalf("TimestampAt: %d %v", ts, ok)
	}
	if _, ok := l.TimestampAt(l.WrotePosition()); ok {
		t.Fatal("TimestampAt the end found a record")
	}
	off, seqs := l.SequenceSnapshot()
	if off != l.WrotePosition() || seqs["a"] != 9 {
		t.Fatalf("snapshot %d %v", off, seqs)
	}
}

// FuzzAppendRaw: whatever AppendRaw accepts is whole, valid records that
// an iterator reads back and the log recovers unchanged.
func FuzzAppendRaw(f *testing.F) {
	f.Add(seedLog())
	f.Add(seedLog()[:40])
	eof := make([]byte, MinRecordSize)
	binary.BigEndian.PutUint32(eof, Magic)
	eof[4] = AttrEOF
	f.Add(append(seedLog(), eof...))
	f.Add([]byte("garbage that is not a record at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := memTempDir(t)
		l, err := Open(Config{Dir: dir, SegmentSize: fuzzSegSize}, Start{})
		if err != nil {
			t.Fatal(err)
		}
		end, err := l.AppendRaw(0, data)
		if err != nil {
			if end != 0 || l.WrotePosition() != 0 {
				t.Fatalf("error %v, yet the log ends at %d", err, l.WrotePosition())
			}
			l.Close()
			return
		}
		it := l.Iterate(0)
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		if it.Err() != nil || it.Offset() != end {
			t.Fatalf("iterator stopped at %d (%v); appended to %d", it.Offset(), it.Err(), end)
		}
		it.Close()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(Config{Dir: dir, SegmentSize: fuzzSegSize}, Start{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.WrotePosition() != end {
			t.Fatalf("recovered to %d, appended to %d", l.WrotePosition(), end)
		}
	})
}
