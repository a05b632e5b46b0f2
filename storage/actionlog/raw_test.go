package actionlog

import (
	"bytes"
	"errors"
	"github.com/qmq-go/qmq/storage/segment"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// copyRaw copies master's bytes into replica until it has everything and
// returns the actions AppendRaw reported.
func copyRaw(t testing.TB, master, replica *Log, max int) []Action {
	t.Helper()
	var got []Action
	for {
		off := replica.WrotePosition()
		v, n, err := master.ReadRaw(off, max)
		if err != nil {
			t.Fatalf("read raw at %d: %v", off, err)
		}
		if n == 0 {
			return got
		}
		end, as, err := replica.AppendRaw(off, v.Bytes()[:n])
		v.Release()
		if err != nil {
			t.Fatalf("append raw at %d (%d bytes): %v", off, n, err)
		}
		if end <= off {
			t.Fatalf("append raw at %d (%d bytes) made no progress", off, n)
		}
		got = append(got, as...)
	}
}

func sameSegmentFiles(t testing.TB, a, b string) {
	t.Helper()
	list := func(dir string) map[string][]byte {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, e := range es {
			if len(e.Name()) == 20 {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out[e.Name()] = data
			}
		}
		return out
	}
	fa, fb := list(a), list(b)
	if len(fa) != len(fb) {
		t.Fatalf("%d segment files vs %d", len(fa), len(fb))
	}
	for name, da := range fa {
		if !bytes.Equal(da, fb[name]) {
			t.Fatalf("segment %s differs", name)
		}
	}
}

func TestRawCopyIsByteIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	master := openTest(t, vfs.Default(), t.TempDir())
	defer master.Close()
	replica := openTest(t, vfs.Default(), t.TempDir())
	defer replica.Close()
	var want, got []Action
	for _, max := range []int{1, 300, 100000} {
		for range 80 {
			b := randomBatch(r)
			if _, err := master.Append(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, b...)
		}
		got = append(got, copyRaw(t, master, replica, max)...)
	}
	if n := master.seg.SegmentCount(); n < 4 {
		t.Fatalf("only %d segments", n)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AppendRaw reported %d actions, master has %d (or they differ)", len(got), len(want))
	}
	sameSegmentFiles(t, master.cfg.Dir, replica.cfg.Dir)
	if !reflect.DeepEqual(actionsOf(readAll(t, replica, 0)), want) {
		t.Fatal("replica iterates to different actions")
	}
}

func TestRawStartAtMasterOldestSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	master := openTest(t, vfs.Default(), t.TempDir())
	defer master.Close()
	for range 200 {
		if _, err := master.Append(randomBatch(r)); err != nil {
			t.Fatal(err)
		}
	}
	segs := master.Segments()
	if _, err := master.DeleteSegmentsBefore(segs[3].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if got := master.ReplicableStart(); got != segs[3].BaseOffset {
		t.Fatalf("replicable start %d, want %d", got, segs[3].BaseOffset)
	}
	if _, _, err := master.ReadRaw(segs[2].BaseOffset, 100); !errors.Is(err, segment.ErrBeforeStart) {
		t.Fatalf("read before start: %v", err)
	}
	if _, _, err := master.ReadRaw(master.WrotePosition()+5, 100); !errors.Is(err, segment.ErrBeyondEnd) {
		t.Fatalf("read beyond end: %v", err)
	}
	dir := t.TempDir()
	replica := openTest(t, vfs.Default(), dir)
	if !replica.Empty() {
		t.Fatal("new log not empty")
	}
	if err := replica.SetStart(master.ReplicableStart()); err != nil {
		t.Fatal(err)
	}
	copyRaw(t, master, replica, 1000)
	sameSegmentFiles(t, master.cfg.Dir, dir)
	if err := replica.SetStart(0); !errors.Is(err, segment.ErrNotEmpty) {
		t.Fatalf("SetStart on a non-empty log: %v", err)
	}
	replica.Close()
	replica = openTest(t, vfs.Default(), dir)
	defer replica.Close()
	if replica.MinOffset() != segs[3].BaseOffset || replica.WrotePosition() != master.WrotePosition() {
		t.Fatalf("reopened replica spans [%d, %d)", replica.MinOffset(), replica.WrotePosition())
	}
	if len(readAll(t, replica, replica.MinOffset())) == 0 {
		t.Fatal("no actions in the copy")
	}
}

func TestRawAppendRejects(t *testing.T) {
	master := openTest(t, vfs.Default(), t.TempDir())
	defer master.Close()
	for i := range 5 {
		a := samplePull()
		a.FirstPullSeq, a.LastPullSeq = int64(i), int64(i)
		if _, err := master.Append([]Action{a}); err != nil {
			t.Fatal(err)
		}
	}
	v, n, err := master.ReadRaw(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(v.Bytes()[:n])
	v.Release()

	replica := openTest(t, vfs.Default(), t.TempDir())
	defer replica.Close()
	var mismatch *segment.OffsetMismatchError
	if _, _, err := replica.AppendRaw(3, good); !errors.As(err, &mismatch) || mismatch.End != 0 {
		t.Fatalf("append at the wrong offset: %v", err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1 // the last record's CRC
	if _, _, err := replica.AppendRaw(0, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt bytes: %v", err)
	}
	if replica.WrotePosition() != 0 || !replica.Empty() {
		t.Fatal("corrupt bytes were partly appended")
	}
	end, as, err := replica.AppendRaw(0, good[:len(good)-2])
	if err != nil || len(as) != 4 || end >= int64(len(good)) {
		t.Fatalf("partial: end %d, %d actions, %v", end, len(as), err)
	}
	end, as, err = replica.AppendRaw(end, good[end:])
	if err != nil || len(as) != 1 || end != int64(len(good)) {
		t.Fatalf("rest: end %d, %d actions, %v", end, len(as), err)
	}

	// The master's segments are larger than ours: refused with the key to change.
	big, err := Open(Config{Dir: t.TempDir(), SegmentSize: 4 * testSegSize, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for big.WrotePosition() < 2*testSegSize {
		if _, err := big.Append(randomBatch(r)); err != nil {
			t.Fatal(err)
		}
	}
	small := openTest(t, vfs.Default(), t.TempDir())
	defer small.Close()
	var lastErr error
	for range 1000 {
		off := small.WrotePosition()
		v, n, err := big.ReadRaw(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		_, _, lastErr = small.AppendRaw(off, v.Bytes()[:n])
		v.Release()
		if lastErr != nil {
			break
		}
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "actionlog.segment.size") {
		t.Fatalf("segment size mismatch: %v", lastErr)
	}
}

func TestRawShortTailAndBlank(t *testing.T) {
	// A segment whose end leaves fewer than MinFillerSize bytes: the tail is
	// copied as zeros and the copy continues in the next segment.
	master := openTest(t, vfs.Default(), t.TempDir())
	defer master.Close()
	a := Action{Type: ForeverOffline, Subject: "s", Group: "g", ConsumerID: strings.Repeat("c", 10)}
	for master.WrotePosition() < 3*testSegSize {
		// Vary the consumer id so some segment ends leave a short tail.
		a.ConsumerID = strings.Repeat("c", 10+int(master.WrotePosition()%7))
		if _, err := master.Append([]Action{a}); err != nil {
			t.Fatal(err)
		}
	}
	replica := openTest(t, vfs.Default(), t.TempDir())
	defer replica.Close()
	copyRaw(t, master, replica, 50)
	sameSegmentFiles(t, master.cfg.Dir, replica.cfg.Dir)

	// A blank record (what QMQ slaves write) is copied as it is.
	blank := []byte{0xC3, 0xB2, 0xA1, 0x00, byte(RecordBlank), 0, 0, 0, 3, 7, 7, 7}
	fresh := openTest(t, vfs.Default(), t.TempDir())
	defer fresh.Close()
	end, as, err := fresh.AppendRaw(0, blank)
	if err != nil || end != int64(len(blank)) || len(as) != 0 {
		t.Fatalf("blank: %d %v %v", end, as, err)
	}
}

// FuzzAppendRaw: whatever AppendRaw accepts is whole, valid records that an
// iterator reads back, and a reopened log recovers to the same end.
func FuzzAppendRaw(f *testing.F) {
	const segSize = 256
	addFuzzSeeds(f)
	root := fuzzDir(f, "actionlog-rawfuzz-")
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(root, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		l, err := Open(Config{Dir: dir, SegmentSize: segSize, FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		end, as, err := l.AppendRaw(0, data)
		if err != nil {
			if l.WrotePosition() != 0 {
				t.Fatalf("error %v, yet the log ends at %d", err, l.WrotePosition())
			}
			l.Close()
			return
		}
		got := readAll(t, l, 0)
		if len(got) != len(as) || (len(got) > 0 && got[len(got)-1].next > end) {
			t.Fatalf("iterated %d actions, AppendRaw reported %d", len(got), len(as))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(Config{Dir: dir, SegmentSize: segSize, FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.WrotePosition() != end {
			t.Fatalf("recovered to %d, appended to %d", l.WrotePosition(), end)
		}
	})
}
