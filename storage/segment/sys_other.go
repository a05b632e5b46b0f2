//go:build !linux

package segment

import (
	"github.com/edsrzf/mmap-go"

	"github.com/qmq-go/qmq/storage/vfs"
)

// preallocate keeps a sparse file where fallocate is not portable.
func preallocate(f vfs.File, size int64) error { return nil }

// msync writes back pages dirtied through the mapping: outside Linux, fsync
// is not guaranteed to see them.
func msync(data []byte) error { return mmap.MMap(data).Flush() }

func zeroTail(f vfs.File, data []byte, pos int64, reserve bool) error {
	clearNonZero(data[pos:])
	return nil
}

func adviseRandom(data []byte) {}

func releasePages(data []byte, from, to int64) {}
