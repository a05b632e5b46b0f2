package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edsrzf/mmap-go"

	"github.com/qmq-go/qmq/storage/vfs"
)

var (
	// ErrOutOfRange is returned for reads outside [MinOffset, WrotePosition)
	// or across a segment boundary.
	ErrOutOfRange = errors.New("segment: offset out of range")
	// ErrDeleted is returned for reads of a segment deleted meanwhile.
	ErrDeleted = errors.New("segment: segment deleted")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("segment: log closed")
)

// segment is one file. Its mapping is created on first use and dropped when
// the segment is retired (deleted or closed) and no View pins it any more, or
// when UnmapIdle finds it unused.
type segment struct {
	base int64
	size int64
	path string
	fs   vfs.FS
	// random asks the kernel not to read ahead on faults (Config.RandomAccess).
	random bool

	// m is the current mapping (nil: not mapped). Readers load it without a
	// lock after pinning; mapping, unmapping and file handling happen under mu.
	m       atomic.Pointer[mapping]
	pins    atomic.Int32
	retired atomic.Bool
	used    atomic.Bool // read since the last UnmapIdle

	mu   sync.Mutex
	file vfs.File
	done bool // finalized: never map again
}

type mapping struct {
	data mmap.MMap
}

func (s *segment) end() int64 { return s.base + s.size }

// pin returns the segment's bytes and keeps them mapped until unpin.
//
// The protocol with unmappers relies on Go's sequentially consistent atomics:
// a reader increments pins and then loads retired/m; an unmapper stores
// retired (or m=nil) and then loads pins. One of the two always sees the
// other, so a mapping is never unmapped under a reader.
func (s *segment) pin() ([]byte, error) {
	s.pins.Add(1)
	if s.retired.Load() {
		s.unpin()
		return nil, ErrDeleted
	}
	if !s.used.Load() {
		s.used.Store(true)
	}
	if m := s.m.Load(); m != nil {
		return m.data, nil
	}
	data, err := s.mapSlow()
	if err != nil {
		s.unpin()
		return nil, err
	}
	return data, nil
}

func (s *segment) unpin() {
	if s.pins.Add(-1) == 0 && s.retired.Load() {
		s.finalize()
	}
}

// mapSlow opens and maps the file (extending it to the segment size if a
// crash left it shorter).
func (s *segment) mapSlow() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, ErrDeleted
	}
	if m := s.m.Load(); m != nil {
		return m.data, nil
	}
	if s.file == nil {
		f, err := s.fs.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open segment %s: %w", s.path, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("stat segment %s: %w", s.path, err)
		}
		if fi.Size() < s.size {
			if err := f.Truncate(s.size); err != nil {
				f.Close()
				return nil, fmt.Errorf("extend segment %s: %w", s.path, err)
			}
		}
		s.file = f
	}
	data, err := mmap.MapRegion(s.file.OSFile(), int(s.size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("map segment %s: %w", s.path, err)
	}
	if s.random {
		adviseRandom(data)
	}
	s.m.Store(&mapping{data: data})
	return data, nil
}

// tryUnmap drops the mapping if nobody pins the segment (UnmapIdle).
func (s *segment) tryUnmap() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m.Load()
	if m == nil || s.done {
		return false
	}
	s.m.Store(nil)
	if s.pins.Load() != 0 {
		s.m.Store(m) // a reader got in: keep it
		return false
	}
	m.data.Unmap()
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	return true
}

// retire marks the segment deleted; it is unmapped now or by the last unpin.
func (s *segment) retire() {
	s.retired.Store(true)
	if s.pins.Load() == 0 {
		s.finalize()
	}
}

// finalize unmaps and closes a retired segment. Callers have observed zero
// pins after retirement, so no View can still reach the mapping: any later
// pin sees retired and backs off without touching it.
func (s *segment) finalize() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	if m := s.m.Swap(nil); m != nil {
		m.data.Unmap()
	}
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// sync makes the segment's content durable. A mapped segment is synced
// through its own handle (pinned, so it stays open); an unmapped one through
// a short-lived handle, without mapping it.
func (s *segment) sync() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	m, f := s.m.Load(), s.file
	if m != nil {
		s.pins.Add(1)
		if s.retired.Load() { // deleted: nothing to make durable
			s.mu.Unlock()
			s.unpin()
			return nil
		}
	}
	s.mu.Unlock()
	if m == nil {
		return syncPath(s.fs, s.path)
	}
	defer s.unpin()
	if err := msync(m.data); err != nil {
		return fmt.Errorf("msync segment %s: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync segment %s: %w", s.path, err)
	}
	return nil
}

func syncPath(fs vfs.FS, path string) error {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) { // deleted meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("open segment %s for fsync: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync segment %s: %w", path, err)
	}
	return f.Close()
}

// View is a zero-copy window on a segment's mapping. It pins the segment: call
// Release exactly once when done; Bytes must not be used afterwards. The zero
// View is valid and empty.
type View struct {
	seg *segment
	b   []byte
	pos int64 // position of b[0] in the segment's file
}

// Bytes returns the viewed bytes (aliasing the mapping).
func (v View) Bytes() []byte { return v.b }

// File returns the segment's file and the position of Bytes()[0] in it, for
// sending the bytes with sendfile(2) instead of copying them; nil for the
// zero View or when the file is not a real one. Both stay valid until
// Release: a pinned segment keeps its file open.
func (v View) File() (*os.File, int64) {
	if v.seg == nil {
		return nil, 0
	}
	v.seg.mu.Lock()
	f := v.seg.file
	v.seg.mu.Unlock()
	if f == nil {
		return nil, 0
	}
	return f.OSFile(), v.pos
}

// Release unpins the segment.
func (v View) Release() {
	if v.seg != nil {
		v.seg.unpin()
	}
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	BaseOffset int64
	Size       int64
	ModTime    time.Time
	Path       string
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

func parseSegmentName(name string) (int64, bool) {
	if len(name) != 20 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		if v < 0 {
			return 0, false
		}
	}
	return v, true
}

func segmentPath(dir string, base int64) string { return filepath.Join(dir, segmentName(base)) }
