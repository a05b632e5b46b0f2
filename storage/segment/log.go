package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/storage/vfs"
)

// Config configures a Log.
type Config struct {
	FS          vfs.FS // nil: vfs.Default()
	Dir         string
	SegmentSize int64 // bytes per new segment
	// SizeKey is the configuration key of SegmentSize (e.g.
	// messagelog.segment.size), named when a full disk refuses a segment.
	SizeKey string
	// Filler fills the unused tail b of a segment when an append does not fit
	// (the message log writes its 13-byte EOF record, then zeros). nil leaves
	// zeros. Readers recognise it and jump to the next segment.
	Filler func(b []byte)
	Logger hclog.Logger // nil: no logging
	// Sparse skips reserving blocks for new segments. Consumer logs use it: with
	// QMQ's 10,000,000-unit segments a reserved file is 220 MB per subject, so
	// thousands of subjects would reserve terabytes for mostly empty indexes (QMQ's
	// own files are sparse too). The cost: a write into a hole on a full disk
	// faults (SIGBUS) instead of failing cleanly — the retention disk ceiling
	// (disk.max.used.ratio) exists to keep the disk from getting there.
	Sparse bool
	// RandomAccess maps segments with MADV_RANDOM. Consumer logs use it: each
	// subject writes 22-byte units into its own sparse file, and without the
	// advice every first touch of a page makes the kernel read ahead around
	// the fault — on file systems with large folios (ext4 since Linux 6.16) it
	// allocates and zeroes a large folio of hole per fault. Measured with
	// BenchmarkStoreAppendSubjects (1,000 subjects): see storage/doc.go.
	RandomAccess bool
	// ResidentBytes bounds how much of the log, behind the flush point, stays
	// mapped into the process after a flush (0 = no bound). The message log
	// uses it: every appended byte is touched through the mapping, so without
	// it the process's RSS grows by the whole active segment (1 GiB) even
	// though the pages are clean page cache. Released pages stay in the page
	// cache; a reader of older data faults them back in (a minor fault).
	ResidentBytes int64
	// WriteThrough appends with pwrite(2) from a reused buffer instead of
	// copying into the mapping; readers still read the mapping (the page
	// cache is one). The message log uses it: a copy into fresh mapped pages
	// takes a page fault per 4 KiB (the kernel zeroes each page first), and
	// a batch's pwrite takes none — qmq bench produce went from ~190k to
	// ~310k msg/s on the 2-core test machine. A failed write stops the log
	// (every later Append fails): the caller may have numbered what it
	// encoded, and a restart recovers from the file.
	WriteThrough bool
}

// Log is a sequence of contiguous segments. See the package documentation.
type Log struct {
	cfg Config
	fs  vfs.FS
	log hclog.Logger

	// segs is an immutable, ascending snapshot, replaced on roll, delete and
	// truncate so that readers find segments without a lock.
	segs    atomic.Pointer[[]*segment]
	wrote   atomic.Int64
	flushed atomic.Int64
	closed  atomic.Bool
	// dirDirty is set when a segment file was created and not yet covered by
	// a directory fsync.
	dirDirty atomic.Bool

	mu      sync.Mutex // serializes changes to segs
	flushMu sync.Mutex // one Flush at a time
	// When releaseBehind last ran, and its upTo (under flushMu).
	lastRelease     time.Time
	lastReleaseUpTo int64
	start           int64 // first offset of an empty log

	// Owned by the single writer (and by Truncate/Close, which callers do not
	// run concurrently with Append).
	active     *segment
	activeData []byte
	scratch    []byte // WriteThrough's encode buffer
	writeErr   error  // WriteThrough: the failed write that stopped the log
}

// Open lists the segments in cfg.Dir (creating it if needed). Content is not
// validated: WrotePosition is the end of the last segment until the owner
// calls Truncate after its recovery scan. Segment sizes follow from the file
// names (each segment reaches the next one's base); the last one has
// cfg.SegmentSize or its file size if larger.
func Open(cfg Config) (*Log, error) {
	if cfg.SegmentSize <= 0 {
		return nil, fmt.Errorf("segment log %s: segment size %d must be positive", cfg.Dir, cfg.SegmentSize)
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default()
	}
	l := &Log{cfg: cfg, fs: cfg.FS, log: cfg.Logger}
	if l.log == nil {
		l.log = hclog.NewNullLogger()
	}
	if err := l.fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create segment dir %s: %w", cfg.Dir, err)
	}
	entries, err := l.fs.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list segment dir %s: %w", cfg.Dir, err)
	}
	type found struct {
		base, fileSize int64
	}
	var files []found
	for _, e := range entries {
		base, ok := parseSegmentName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat segment %s: %w", segmentPath(cfg.Dir, base), err)
		}
		files = append(files, found{base, fi.Size()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].base < files[j].base })
	segs := make([]*segment, 0, len(files))
	for i, f := range files {
		size := max(f.fileSize, cfg.SegmentSize)
		if i+1 < len(files) {
			size = files[i+1].base - f.base
			// A smaller file is one whose preallocation a crash lost; a larger
			// gap means a missing segment.
			if size > max(f.fileSize, cfg.SegmentSize) {
				return nil, fmt.Errorf("segment log %s: gap after segment %s (next starts at %d)",
					cfg.Dir, segmentName(f.base), files[i+1].base)
			}
		}
		segs = append(segs, &segment{base: f.base, size: size, path: segmentPath(cfg.Dir, f.base), fs: l.fs, random: cfg.RandomAccess})
	}
	l.segs.Store(&segs)
	if n := len(segs); n > 0 {
		l.start = segs[0].base
		l.wrote.Store(segs[n-1].end())
		l.active = segs[n-1]
	}
	// Nothing is known to be durable (a killed predecessor may have left dirty
	// pages): the first Flush syncs every segment.
	l.flushed.Store(l.start)
	l.log.Debug("segment log opened", "dir", cfg.Dir, "segments", len(segs), "wrote", l.wrote.Load())
	return l, nil
}

func (l *Log) snapshot() []*segment { return *l.segs.Load() }

// SetStart makes an empty log begin at offset (a slave's copy, or a log whose
// older part was deleted).
func (l *Log) SetStart(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.snapshot()) > 0 {
		return fmt.Errorf("segment log %s: SetStart on a non-empty log", l.cfg.Dir)
	}
	if offset < 0 {
		return fmt.Errorf("segment log %s: negative start %d", l.cfg.Dir, offset)
	}
	l.start = offset
	l.wrote.Store(offset)
	l.flushed.Store(offset)
	return nil
}

// find returns the segment containing offset, or nil.
func (l *Log) find(offset int64) *segment {
	segs := l.snapshot()
	n := len(segs)
	if n == 0 {
		return nil
	}
	if last := segs[n-1]; offset >= last.base { // most reads are recent
		if offset < last.end() {
			return last
		}
		return nil
	}
	lo, hi := 0, n-1 // segs[hi].base > offset
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if segs[mid].base <= offset {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return nil
	}
	if s := segs[lo-1]; offset < s.end() {
		return s
	}
	return nil
}

// Append reserves n bytes that do not straddle segments, lets write fill
// them through the mapping and publishes them. Callers serialize Append.
func (l *Log) Append(n int, write func(b []byte)) (int64, error) {
	if n <= 0 || int64(n) > l.cfg.SegmentSize {
		return 0, fmt.Errorf("segment log %s: append of %d bytes (segment size %d)", l.cfg.Dir, n, l.cfg.SegmentSize)
	}
	if l.closed.Load() {
		return 0, ErrClosed
	}
	off := l.wrote.Load()
	s := l.active
	if s == nil || off+int64(n) > s.end() {
		var err error
		if s, err = l.roll(off); err != nil {
			return 0, err
		}
		off = l.wrote.Load()
	}
	if l.activeData == nil {
		data, err := s.pin()
		if err != nil {
			return 0, err
		}
		s.unpin() // the active segment is never unmapped (see UnmapIdle)
		l.activeData = data
	}
	pos := off - s.base
	if l.cfg.WriteThrough {
		if l.writeErr != nil {
			return 0, l.writeErr
		}
		if cap(l.scratch) < n {
			l.scratch = make([]byte, n)
		}
		b := l.scratch[:n:n]
		write(b)
		s.mu.Lock()
		f := s.file
		s.mu.Unlock()
		if _, err := f.WriteAt(b, pos); err != nil {
			err = diskspace.Wrap(l.fs, err, l.cfg.Dir, int64(n), "a write into a segment the file system did not preallocate")
			l.writeErr = fmt.Errorf("segment log %s: write of %d bytes at offset %d failed, appends stopped until a restart recovers the log: %w", l.cfg.Dir, n, off, err)
			return 0, l.writeErr
		}
	} else {
		write(l.activeData[pos : pos+int64(n) : pos+int64(n)])
	}
	l.wrote.Store(off + int64(n))
	return off, nil
}

// roll starts a new segment at the end of the active one and fills the
// rest of the active one. The new segment is created first: when that fails
// (a full disk refuses its blocks) nothing has changed, the partial file is
// gone, and appends that still fit the active segment's tail go on.
func (l *Log) roll(off int64) (*segment, error) {
	prev := l.active
	base := off
	if prev != nil && off < prev.end() {
		base = prev.end()
	}
	s := &segment{base: base, size: l.cfg.SegmentSize, path: segmentPath(l.cfg.Dir, base), fs: l.fs, random: l.cfg.RandomAccess}
	data, err := l.create(s)
	if err != nil {
		return nil, err
	}
	if prev != nil && off < prev.end() {
		pdata, err := prev.pin()
		if err != nil {
			s.retire()
			l.fs.Remove(s.path)
			return nil, err
		}
		tail := pdata[off-prev.base:]
		if l.cfg.Filler != nil {
			l.cfg.Filler(tail)
		}
		prev.unpin()
		l.wrote.Store(base) // readers may now pass the filler
	}
	l.dirDirty.Store(true)
	l.mu.Lock()
	old := l.snapshot()
	segs := make([]*segment, len(old), len(old)+1)
	copy(segs, old)
	segs = append(segs, s)
	l.segs.Store(&segs)
	l.mu.Unlock()
	l.active, l.activeData = s, data
	l.log.Debug("segment created", "path", s.path)
	return s, nil
}

// create makes s's file, reserves its blocks and maps it. On failure the
// file is removed again; a full disk is reported as a *diskspace.FullError.
func (l *Log) create(s *segment) ([]byte, error) {
	f, err := l.fs.OpenFile(s.path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, l.noSpace(fmt.Errorf("create segment %s: %w", s.path, err), s.size)
	}
	fail := func(err error) ([]byte, error) {
		f.Close()
		l.fs.Remove(s.path)
		return nil, l.noSpace(err, s.size)
	}
	if err := f.Truncate(s.size); err != nil {
		return fail(fmt.Errorf("size segment %s: %w", s.path, err))
	}
	if err := l.preallocate(f, s.size); err != nil {
		return fail(fmt.Errorf("preallocate segment %s of %d bytes: %w", s.path, s.size, err))
	}
	s.file = f
	data, err := s.mapSlow()
	if err != nil {
		s.file = nil
		return fail(err)
	}
	return data, nil
}

// noSpace turns a file system out of space into a *diskspace.FullError
// naming the log's directory and the segment size setting.
func (l *Log) noSpace(err error, needed int64) error {
	key := l.cfg.SizeKey
	if key == "" {
		key = "the segment size"
	}
	return diskspace.Wrap(l.fs, err, l.cfg.Dir, needed, "a new segment ("+key+")")
}

// WrotePosition is the end of the published bytes.
func (l *Log) WrotePosition() int64 { return l.wrote.Load() }

// FlushedPosition is the end of the bytes known durable.
func (l *Log) FlushedPosition() int64 { return l.flushed.Load() }

// Flush makes everything appended before the call durable: it syncs each
// segment holding bytes in [FlushedPosition, WrotePosition) and, if segments
// were created, the directory.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return l.flushLocked()
}

func (l *Log) flushLocked() error {
	target := l.wrote.Load()
	from := l.flushed.Load()
	if target <= from && !l.dirDirty.Load() {
		if l.cfg.ResidentBytes > 0 {
			l.releaseBehind(from - l.cfg.ResidentBytes) // what readers mapped meanwhile
		}
		return nil
	}
	for _, s := range l.snapshot() {
		if s.end() <= from || s.base >= target {
			continue
		}
		if err := s.sync(); err != nil {
			return err
		}
	}
	if l.dirDirty.Swap(false) {
		if err := l.fs.SyncDir(l.cfg.Dir); err != nil {
			l.dirDirty.Store(true)
			return fmt.Errorf("sync segment dir %s: %w", l.cfg.Dir, err)
		}
	}
	if target > from {
		l.flushed.Store(target)
		if l.cfg.ResidentBytes > 0 {
			l.releaseBehind(target - l.cfg.ResidentBytes)
		}
	}
	return nil
}

// releaseEvery spaces releaseBehind calls.
const releaseEvery = 100 * time.Millisecond

// releaseBehind drops this process's mappings of the flushed pages below
// upTo (see Config.ResidentBytes). Every flush releases the whole range
// again, not just what the flush point passed: readers of older messages
// (consumers catching up) map pages back in, and those must go too for the
// bound to hold. Unpopulated ranges cost the kernel a page-table walk only.
// With flush.sync a flush follows every batch, so releases are spaced by
// releaseEvery unless a quarter of the bound was written since. flushMu is
// held.
func (l *Log) releaseBehind(upTo int64) {
	now := time.Now()
	if now.Sub(l.lastRelease) < releaseEvery && upTo-l.lastReleaseUpTo < l.cfg.ResidentBytes/4 {
		return
	}
	l.lastRelease, l.lastReleaseUpTo = now, upTo
	for _, s := range l.snapshot() {
		if s.base >= upTo {
			break
		}
		if s.m.Load() == nil {
			continue // not mapped: nothing resident
		}
		data, err := s.pin()
		if err != nil {
			continue
		}
		releasePages(data, 0, min(upTo, s.end())-s.base)
		s.unpin()
	}
}

// Read returns a zero-copy view of [offset, offset+n), which must lie inside
// one segment and below WrotePosition. It does not allocate.
func (l *Log) Read(offset int64, n int) (View, error) {
	end := offset + int64(n)
	if n < 0 || offset < 0 || end > l.wrote.Load() {
		return View{}, ErrOutOfRange
	}
	s := l.find(offset)
	if s == nil || end > s.end() {
		return View{}, ErrOutOfRange
	}
	data, err := s.pin()
	if err != nil {
		return View{}, err
	}
	pos := offset - s.base
	return View{seg: s, b: data[pos : end-s.base : end-s.base], pos: pos}, nil
}

// ReadAt copies bytes at offset into p, crossing segments if needed. It
// returns io.EOF if fewer than len(p) bytes lie below WrotePosition.
func (l *Log) ReadAt(p []byte, offset int64) (int, error) {
	read := 0
	for read < len(p) {
		off := offset + int64(read)
		wrote := l.wrote.Load()
		if off >= wrote {
			return read, io.EOF
		}
		s := l.find(off)
		if s == nil {
			return read, ErrOutOfRange
		}
		n := int(min(int64(len(p)-read), s.end()-off, wrote-off))
		v, err := l.Read(off, n)
		if err != nil {
			return read, err
		}
		copy(p[read:], v.Bytes())
		v.Release()
		read += n
	}
	return read, nil
}

// SegmentEnd returns the end offset of the segment containing offset, or -1
// if no segment contains it.
func (l *Log) SegmentEnd(offset int64) int64 {
	if s := l.find(offset); s != nil {
		return s.end()
	}
	return -1
}

// SegmentCount is the number of segments (cheaper than len(Segments())).
func (l *Log) SegmentCount() int { return len(l.snapshot()) }

// MinOffset is the first offset still stored.
func (l *Log) MinOffset() int64 {
	if segs := l.snapshot(); len(segs) > 0 {
		return segs[0].base
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

// Segments describes the segments, ascending.
func (l *Log) Segments() []SegmentInfo {
	segs := l.snapshot()
	infos := make([]SegmentInfo, 0, len(segs))
	for _, s := range segs {
		info := SegmentInfo{BaseOffset: s.base, Size: s.size, Path: s.path}
		if fi, err := l.fs.Stat(s.path); err == nil {
			info.ModTime = fi.ModTime()
		}
		infos = append(infos, info)
	}
	return infos
}

// DeleteSegmentsBefore deletes the segments that end at or before offset,
// never the last (active) one. Views already taken stay valid until released.
func (l *Log) DeleteSegmentsBefore(offset int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.snapshot()
	n := 0
	for n < len(old)-1 && old[n].end() <= offset {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	segs := make([]*segment, len(old)-n)
	copy(segs, old[n:])
	l.segs.Store(&segs)
	l.start = segs[0].base
	var errs []error
	for _, s := range old[:n] {
		s.retire()
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete segment %s: %w", s.path, err))
		}
		l.log.Debug("segment deleted", "path", s.path)
	}
	return n, errors.Join(errs...)
}

// Resume sets WrotePosition to offset in a log just opened whose exact end
// the caller knows, and whose bytes past it are known blank: this process
// wrote the log up to offset and no further, then closed it (a consumer
// log closed to save descriptors and opened again). Unlike Truncate it
// zeroes and syncs nothing: a reopened consumer log paid an fsync here for
// a tail that was already blank. FlushedPosition becomes offset too; the
// caller makes what the log held unsynced durable by other means (SyncFile
// on what CloseUnsynced returned). offset must lie in the last segment.
func (l *Log) Resume(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	segs := l.snapshot()
	if len(segs) == 0 {
		if offset != l.start {
			return fmt.Errorf("segment log %s: resume an empty log at %d (start %d)", l.cfg.Dir, offset, l.start)
		}
		return nil
	}
	last := segs[len(segs)-1]
	if offset < last.base || offset > last.end() {
		return fmt.Errorf("segment log %s: resume at %d outside the last segment [%d, %d]", l.cfg.Dir, offset, last.base, last.end())
	}
	l.active, l.activeData = last, nil
	l.wrote.Store(offset)
	l.flushed.Store(offset)
	return nil
}

// Truncate is for recovery: WrotePosition becomes offset, segments starting
// at or after it are removed (but the first segment is kept) and the bytes from offset to the end of its segment
// are zeroed. The zeroing and removals are made durable before returning, so
// that a later crash cannot resurrect old records behind new ones.
func (l *Log) Truncate(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.snapshot()
	if len(old) == 0 {
		if offset != l.start {
			return fmt.Errorf("segment log %s: truncate empty log to %d (start %d)", l.cfg.Dir, offset, l.start)
		}
		return nil
	}
	if offset < old[0].base || offset > old[len(old)-1].end() {
		return fmt.Errorf("segment log %s: truncate to %d outside [%d, %d]", l.cfg.Dir, offset, old[0].base, old[len(old)-1].end())
	}
	keep := len(old)
	for keep > 1 && old[keep-1].base >= offset {
		keep--
	}
	removed := old[keep:]
	if len(removed) > 0 {
		segs := append([]*segment(nil), old[:keep]...)
		l.segs.Store(&segs)
		for _, s := range removed {
			s.retire()
			if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("truncate: remove segment %s: %w", s.path, err)
			}
		}
		if err := l.fs.SyncDir(l.cfg.Dir); err != nil {
			return fmt.Errorf("truncate: sync dir %s: %w", l.cfg.Dir, err)
		}
		l.log.Info("truncated segments", "dir", l.cfg.Dir, "removed", len(removed), "offset", offset)
	}
	last := old[keep-1]
	if offset < last.end() {
		if err := l.zeroFrom(last, offset-last.base); err != nil {
			return err
		}
	}
	l.active, l.activeData = last, nil
	l.wrote.Store(offset)
	if l.flushed.Load() > offset {
		l.flushed.Store(offset)
	}
	return nil
}

// preallocate reserves a new segment's blocks unless the log is sparse.
func (l *Log) preallocate(f vfs.File, size int64) error {
	if l.cfg.Sparse {
		return nil
	}
	return preallocate(f, size)
}

// zeroFrom durably zeroes s from pos to its end.
func (l *Log) zeroFrom(s *segment, pos int64) error {
	data, err := s.pin()
	if err != nil {
		return err
	}
	defer s.unpin()
	s.mu.Lock()
	f := s.file
	s.mu.Unlock()
	if err := zeroTail(f, data, pos, !l.cfg.Sparse); err != nil {
		err = diskspace.Wrap(l.fs, err, l.cfg.Dir, s.size, "the blocks of the zeroed tail of segment "+s.path)
		return fmt.Errorf("truncate: zero segment %s from %d: %w", s.path, pos, err)
	}
	if err := s.sync(); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// UnmapIdle unmaps sealed, flushed segments that no View pins and nobody read
// since the previous call; they are mapped again on the next read. The owner
// calls it periodically (e.g. from its retention loop). It returns how many
// segments it unmapped.
func (l *Log) UnmapIdle() int {
	flushed := l.flushed.Load()
	segs := l.snapshot()
	n := 0
	for i, s := range segs {
		if i == len(segs)-1 || s.end() > flushed {
			break
		}
		if s.used.Swap(false) {
			continue
		}
		if s.tryUnmap() {
			n++
		}
	}
	return n
}

// Unsynced names what a log closed by CloseUnsynced still owes the disk:
// segment files holding bytes not synced yet, and the log's directory when
// a segment was created since its last sync ("" otherwise).
type Unsynced struct {
	Files []string
	Dir   string
}

// CloseUnsynced releases every segment like Close, without syncing what was
// appended since the last Flush: those bytes stay in the page cache (an
// unmapped shared mapping leaves its dirty pages there) and the caller
// makes them durable later with SyncFile and SyncDir on what it returns.
// Closing an idle log so costs no fsync; a caller closing many logs (a
// consumer-log manager over its bound) syncs them in one batch, off its
// hot path.
func (l *Log) CloseUnsynced() Unsynced {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.closed.Swap(true) {
		return Unsynced{}
	}
	var u Unsynced
	target, from := l.wrote.Load(), l.flushed.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.snapshot() {
		if s.end() > from && s.base < target {
			u.Files = append(u.Files, s.path)
		}
		s.retire()
	}
	if l.dirDirty.Load() {
		u.Dir = l.cfg.Dir
	}
	empty := []*segment{}
	l.segs.Store(&empty)
	l.active, l.activeData = nil, nil
	return u
}

// SyncFile makes a closed segment file's bytes durable (open, fsync,
// close); a file deleted meanwhile has nothing to sync.
func SyncFile(fs vfs.FS, path string) error { return syncPath(fs, path) }

// Close flushes and releases every segment; Views still held keep their
// segment mapped until released.
func (l *Log) Close() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	err := l.flushLocked()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.snapshot() {
		s.retire()
	}
	empty := []*segment{}
	l.segs.Store(&empty)
	l.active, l.activeData = nil, nil
	if err != nil {
		return fmt.Errorf("close segment log %s: %w", l.cfg.Dir, err)
	}
	return nil
}
