package segment

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/storage/vfs"
)

// fullDisk is a file system that refuses to allocate blocks (ENOSPC) while
// full is set, and reports free bytes of free.
func fullDisk(base vfs.FS, full *atomic.Bool, free int64) vfs.FS {
	fs := vfs.NewErrorFS(base, func(op, path string) error {
		if op == vfs.OpAllocate && full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	return vfs.NewUsageFS(fs, func(string) (vfs.Usage, error) { return vfs.Usage{Total: 10 * testSegSize, Free: free}, nil })
}

// TestFullDiskRefusesSegmentCleanly: a segment the disk cannot allocate is
// reported as a *diskspace.FullError naming the directory and the space
// needed, leaves no file behind and changes nothing: appends that fit the
// active segment's tail go on, the roll succeeds once space returns, and
// the log reopens with every record.
func TestFullDiskRefusesSegmentCleanly(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	l, err := Open(Config{FS: fullDisk(vfs.Default(), &full, 1234), Dir: dir, SegmentSize: testSegSize, SizeKey: "test.segment.size",
		Filler: func(b []byte) { clear(b) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 1000
	var offs []int64
	for i := 0; i < testSegSize/n; i++ {
		offs = append(offs, appendRecord(t, l, n))
	}
	full.Store(true)
	before := l.WrotePosition()
	_, err = l.Append(2*n, func([]byte) { t.Fatal("write called for a refused append") })
	var fe *diskspace.FullError
	if !errors.As(err, &fe) || !errors.Is(err, diskspace.ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v (%T), want a *diskspace.FullError wrapping ENOSPC", err, err)
	}
	if fe.Path != dir || fe.Needed != testSegSize || fe.Free != 1234 {
		t.Fatalf("full error %+v: want path %s, needed %d, free 1234", fe, dir, testSegSize)
	}
	t.Logf("refusal: %v", err)
	if l.WrotePosition() != before || l.SegmentCount() != 1 {
		t.Fatalf("refused roll changed the log: wrote %d (was %d), %d segments", l.WrotePosition(), before, l.SegmentCount())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("refused roll left files: %v", es)
	}
	// The tail still takes what fits.
	tail := int(testSegSize - before)
	offs = append(offs, appendRecord(t, l, tail))
	// Space returns: the next roll allocates.
	full.Store(false)
	offs = append(offs, appendRecord(t, l, 2*n))
	if l.SegmentCount() != 2 {
		t.Fatalf("%d segments after the roll, want 2", l.SegmentCount())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, nil, dir)
	defer l.Close()
	for i, off := range offs {
		size := n
		switch i {
		case len(offs) - 2:
			size = tail
		case len(offs) - 1:
			size = 2 * n
		}
		checkRecord(t, l, off, size)
	}
}
