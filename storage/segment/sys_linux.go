package segment

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/qmq-go/qmq/storage/vfs"
)

// preallocate reserves the segment's blocks so that writes through the
// mapping never hit a hole (which could SIGBUS on a full disk) and never
// change the file's size. File systems without fallocate keep a sparse file.
func preallocate(f vfs.File, size int64) error {
	if err := f.Allocate(size); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// msync is not needed on Linux: the page cache is unified, so fsync writes
// back pages dirtied through shared mappings too, and msync(MS_SYNC) would be
// a second, redundant write-back pass.
func msync(data []byte) error { return nil }

// zeroTail zeroes data[pos:] (the whole mapped segment is data). Whole pages
// are punched out of the file, which is cheap whatever their number, then
// reallocated (unless the log is sparse); the partial first page is cleared through the mapping. If the
// file system cannot punch holes, non-zero pages are cleared by hand.
func zeroTail(f vfs.File, data []byte, pos int64, reserve bool) error {
	page := int64(unix.Getpagesize())
	aligned := min((pos+page-1)/page*page, int64(len(data)))
	clear(data[pos:aligned])
	if aligned == int64(len(data)) {
		return nil
	}
	fd := int(f.OSFile().Fd())
	length := int64(len(data)) - aligned
	err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, aligned, length)
	if err != nil {
		clearNonZero(data[aligned:])
		return nil
	}
	if !reserve {
		return nil // sparse logs keep the holes
	}
	return preallocate(f, int64(len(data)))
}

// adviseRandom turns off read-ahead and fault-around for a mapping. It is
// advice: a failure changes speed, never correctness, so it is ignored.
func adviseRandom(data []byte) { _ = unix.Madvise(data, unix.MADV_RANDOM) }

// releasePages drops the mapping's pages covering whole pages of
// data[from:to] from this process (MADV_DONTNEED). The mapping is shared and
// file-backed, so the bytes stay in the file and the page cache; the next
// access maps them again. Advice only: a failure is ignored.
func releasePages(data []byte, from, to int64) {
	page := int64(unix.Getpagesize())
	from = (from + page - 1) / page * page
	to = to / page * page
	if to <= from {
		return
	}
	_ = unix.Madvise(data[from:to], unix.MADV_DONTNEED)
}
