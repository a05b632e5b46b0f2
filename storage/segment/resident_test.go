package segment

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// rssBytes reads this process's resident set size (Linux only).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("VmRSS not found in /proc/self/status")
	return 0
}

// TestResidentBytesBoundsRSS writes 128 MiB through the mapping with a 4 MiB
// resident bound: the process's RSS must not grow by the data written, and
// every byte must still read back (released pages come back from the page
// cache).
func TestResidentBytesBoundsRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the bound uses madvise(MADV_DONTNEED)")
	}
	const (
		segSize = 64 << 20
		total   = 128 << 20
		recSize = 64 << 10
	)
	l, err := Open(Config{FS: vfs.Default(), Dir: t.TempDir(), SegmentSize: segSize, ResidentBytes: 4 << 20,
		Filler: func(b []byte) { clear(b) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before := rssBytes(t)
	rec := bytes.Repeat([]byte{0x5A}, recSize)
	for written := 0; written < total; written += recSize {
		if _, err := l.Append(recSize, func(b []byte) { copy(b, rec) }); err != nil {
			t.Fatal(err)
		}
		if written%(8<<20) == 0 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	grew := rssBytes(t) - before
	if grew > 48<<20 {
		t.Fatalf("RSS grew by %d MiB after writing %d MiB with ResidentBytes=4 MiB; released pages are still mapped", grew>>20, total>>20)
	}
	t.Logf("RSS grew by %d MiB for %d MiB written", grew>>20, total>>20)
	buf := make([]byte, recSize)
	for off := int64(0); off < total; off += recSize {
		if _, err := l.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, rec) {
			t.Fatalf("record at %d changed after its pages were released", off)
		}
	}
}
