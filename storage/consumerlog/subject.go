package consumerlog

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/storage/segment"
)

const noPendingTruncate = -2

// subjectLog is one subject's consumer log.
//
// Locking: writeMu serializes writers (Put, TruncateAfter, DeleteBefore,
// close), and is taken before rw. rw is held shared by every user of log
// and exclusively to open, truncate or close it, so Get (shared only) runs
// concurrently with Put; the segment log makes an append visible to readers
// only once it is complete.
type subjectLog struct {
	m       *Manager
	subject string
	dir     string // "" when nameErr != nil
	nameErr error  // the subject cannot be a directory name

	writeMu sync.Mutex
	rw      sync.RWMutex
	log     *segment.Log // nil until opened
	closed  bool
	// pendingTruncate is a TruncateAfter received before the log was
	// opened, applied when it is (noPendingTruncate: none).
	pendingTruncate int64

	next atomic.Int64 // max sequence + 1, valid once log is open
	// isOpen mirrors log != nil for the release pass, which must not take
	// every subject's lock to find the open ones; lastUse is the Manager's
	// epoch at the last use (see touch).
	isOpen  atomic.Bool
	lastUse atomic.Int64
	// released: the log was open and release closed it; next and
	// releasedMin (its first sequence) are still exact, so bounds answers
	// without reopening it (the dispatcher asks every subject's bounds at
	// each checkpoint). Under rw.
	released    bool
	releasedMin int64
	onDisk      atomic.Bool // the subject has a directory: listed by Subjects
	changed     atomic.Bool // on the Manager's list of ends moved since the last EachChangedMaxSequence
	notify      notifier

	// Segment files found at Open, reported by the metrics until the log
	// is opened.
	diskSegments, diskBytes int64
}

// openEnd finds the end of log, just opened for s, and makes it the log's
// write position.
func (s *subjectLog) openEnd(log *segment.Log) (int64, error) {
	if s.released {
		// Closed by a release pass: its end is exact and nothing past it
		// was ever written, so recovery (a search, and a Truncate that
		// zeroes and fsyncs the tail: an fsync per reopen, which left the
		// dispatcher far behind with more busy subjects than the bound)
		// is not needed.
		end := s.next.Load() * UnitSize
		if log.Resume(end) == nil {
			return end, nil
		}
	}
	end, err := recoverEnd(log)
	if err == nil && end != log.WrotePosition() {
		s.m.logger.Debug("consumer log end recovered", "subject", s.subject, "end", end, "file_end", log.WrotePosition())
		err = log.Truncate(end)
	}
	return end, err
}

// openLocked opens the log and recovers its end. rw must be held
// exclusively.
func (s *subjectLog) openLocked(create bool) error {
	if s.nameErr != nil {
		return fmt.Errorf("consumer log of %q: %w", s.subject, s.nameErr)
	}
	fs := s.m.fs
	if create && !s.onDisk.Load() {
		if err := fs.MkdirAll(s.dir, 0o755); err != nil {
			return fmt.Errorf("create consumer log %s: %w", s.dir, err)
		}
		// The new directory's entry is made durable by the next Flush (one
		// directory sync for every subject created meanwhile).
		s.m.dirDirty.Store(true)
		s.onDisk.Store(true)
	}
	log, err := segment.Open(segment.Config{
		FS:           fs,
		Dir:          s.dir,
		SegmentSize:  s.m.segmentSize,
		SizeKey:      "consumerlog.segment.units",
		Filler:       fillBlank,
		Sparse:       true, // see segment.Config.Sparse: 220 MB per subject otherwise
		RandomAccess: true, // see segment.Config.RandomAccess: no read-ahead of holes
		Logger:       s.m.logger.With("subject", s.subject),
	})
	if err != nil {
		return fmt.Errorf("open consumer log %s: %w", s.dir, err)
	}
	end, err := s.openEnd(log)
	if err != nil {
		_ = log.Close()
		return fmt.Errorf("recover consumer log %s: %w", s.dir, err)
	}
	s.log = log
	s.released = false
	s.next.Store(end / UnitSize)
	if s.pendingTruncate != noPendingTruncate {
		if err := s.truncateLocked(s.pendingTruncate); err != nil {
			// Stay unopened with the truncation pending: serving the
			// untruncated tail would serve what recovery meant to drop.
			s.log = nil
			_ = log.Close()
			return err
		}
		s.pendingTruncate = noPendingTruncate
	}
	s.isOpen.Store(true)
	s.m.openLogs.Add(1)
	return nil
}

// recoverEnd returns the offset just past the last unit a Put wrote. Only
// the last segment can be partly written (earlier ones were full when the
// next was started), and in it written units form a prefix followed by
// zeros, so a binary search finds the boundary. A crash can leave the
// unflushed part with holes or a torn last unit: the search then lands on
// some boundary at or after the flushed end, and units that cannot be what
// a Put wrote are stepped back over.
func recoverEnd(log *segment.Log) (int64, error) {
	segs := log.Segments()
	if len(segs) == 0 {
		return log.WrotePosition(), nil
	}
	last := segs[len(segs)-1]
	if last.BaseOffset%UnitSize != 0 {
		return 0, fmt.Errorf("segment %s: base offset %d is not a multiple of the unit size %d", last.Path, last.BaseOffset, UnitSize)
	}
	var (
		buf     [UnitSize]byte
		readErr error
	)
	read := func(unit int64) []byte {
		if _, err := log.ReadAt(buf[:], unit*UnitSize); err != nil && readErr == nil {
			readErr = fmt.Errorf("read unit %d: %w", unit, err)
		}
		return buf[:]
	}
	lo := last.BaseOffset / UnitSize
	hi := log.WrotePosition() / UnitSize
	end := lo + int64(sort.Search(int(hi-lo), func(k int) bool { return isZero(read(lo + int64(k))) }))
	first := (log.MinOffset() + UnitSize - 1) / UnitSize
	for end > first && !plausible(read(end-1)) {
		end--
	}
	if readErr != nil {
		return 0, readErr
	}
	return end * UnitSize, nil
}

// ensureOpen opens the log if needed. create makes the directory of a new
// subject; without it a subject with no directory stays unopened and
// ensureOpen reports false.
func (s *subjectLog) ensureOpen(create bool) (bool, error) {
	ok, opened, err := s.openIfNeeded(create)
	if opened {
		s.m.opened(s)
	}
	return ok, err
}

// openIfNeeded is ensureOpen's locked part; opened reports a log it opened
// (the Manager then counts the use, with no lock held).
func (s *subjectLog) openIfNeeded(create bool) (ok, opened bool, err error) {
	s.rw.Lock()
	defer s.rw.Unlock()
	if s.closed {
		return false, false, ErrClosed
	}
	if s.log != nil {
		return true, false, nil
	}
	if !create && !s.onDisk.Load() {
		return false, false, nil
	}
	if err := s.openLocked(create); err != nil {
		return false, false, err
	}
	return true, true, nil
}

// rlockOpen takes rw shared with the log open. ok is false (and rw not
// held) when the subject has no log and create is false.
func (s *subjectLog) rlockOpen(create bool) (ok bool, err error) {
	for {
		s.rw.RLock()
		if s.closed {
			s.rw.RUnlock()
			return false, ErrClosed
		}
		if s.log != nil {
			s.touch()
			return true, nil
		}
		s.rw.RUnlock()
		if ok, err := s.ensureOpen(create); !ok || err != nil {
			return false, err
		}
	}
}

func (s *subjectLog) get(seq int64) (Entry, bool, error) {
	ok, err := s.rlockOpen(false)
	if !ok {
		return Entry{}, false, err
	}
	defer s.rw.RUnlock()
	if seq < 0 || seq >= s.next.Load() {
		return Entry{}, false, nil
	}
	v, err := s.log.Read(seq*UnitSize, UnitSize)
	if err != nil {
		if seq*UnitSize < s.log.MinOffset() {
			return Entry{}, false, nil // deleted by retention
		}
		return Entry{}, false, fmt.Errorf("get %s/%d: %w", s.subject, seq, err)
	}
	e := decodeUnit(v.Bytes())
	v.Release()
	if !isValidEntry(e) {
		return Entry{}, false, nil // blank, never written, or torn by a crash
	}
	return e, true, nil
}

// bounds returns next (max sequence + 1) and the min sequence.
func (s *subjectLog) bounds() (next, minSeq int64) {
	s.rw.RLock()
	if s.log == nil && s.released && !s.closed {
		next, minSeq = s.next.Load(), s.releasedMin
		s.rw.RUnlock()
		return next, min(minSeq, next)
	}
	s.rw.RUnlock()
	ok, _ := s.rlockOpen(false)
	if !ok {
		return 0, 0
	}
	defer s.rw.RUnlock()
	next = s.next.Load()
	return next, min(s.log.MinOffset()/UnitSize, next)
}

func (s *subjectLog) put(seq int64, e Entry) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.rlockOpen(true); err != nil {
		return fmt.Errorf("put %s/%d: %w", s.subject, seq, err)
	}
	advanced, err := s.putLocked(seq, e)
	s.rw.RUnlock()
	if advanced {
		s.markChanged()
		s.notify.fire()
	}
	return err
}

// putLocked runs with writeMu and rw (shared) held.
func (s *subjectLog) putLocked(seq int64, e Entry) (advanced bool, err error) {
	next := s.next.Load()
	if seq < next {
		return false, nil
	}
	if seq > next {
		if err := s.skipTo(seq); err != nil {
			return false, fmt.Errorf("put %s/%d: %w", s.subject, seq, err)
		}
	}
	want := seq * UnitSize
	off, err := s.log.Append(UnitSize, func(b []byte) { encodeUnit(b, e) })
	if err != nil {
		return false, fmt.Errorf("put %s/%d: %w", s.subject, seq, err)
	}
	if off != want {
		// Cannot happen while segments hold whole units; if it does, the
		// log no longer maps sequences to offsets and must not be served.
		s.next.Store(s.log.WrotePosition() / UnitSize)
		return true, fmt.Errorf("put %s/%d: unit landed at offset %d, want %d", s.subject, seq, off, want)
	}
	s.next.Store(seq + 1)
	return true, nil
}

// skipTo makes the log end at sequence seq: an empty log starts at the
// segment containing seq, otherwise the gap is filled with blank units.
func (s *subjectLog) skipTo(seq int64) error {
	target := seq * UnitSize
	wrote := s.log.WrotePosition()
	if wrote == s.log.MinOffset() && len(s.log.Segments()) == 0 {
		start := target - target%s.m.segmentSize
		if start > wrote {
			if err := s.log.SetStart(start); err != nil {
				return fmt.Errorf("start log at %d: %w", start, err)
			}
			wrote = start
		}
	}
	var blanks int64
	for wrote < target {
		// Never ask for more than the current segment holds: the segment
		// log would otherwise pad with its filler and start the chunk in
		// the next segment, shifting every later sequence.
		room := s.m.segmentSize
		if segs := s.log.Segments(); len(segs) > 0 {
			last := segs[len(segs)-1]
			if used := wrote - last.BaseOffset; used < s.m.segmentSize {
				room = s.m.segmentSize - used
			}
		}
		n := min(room, target-wrote)
		off, err := s.log.Append(int(n), fillBlank)
		if err != nil {
			return fmt.Errorf("blank fill at %d: %w", wrote, err)
		}
		if off != wrote {
			return fmt.Errorf("blank fill landed at offset %d, want %d", off, wrote)
		}
		wrote += n
		blanks += n / UnitSize
	}
	s.m.metrics.blankUnits(blanks)
	return nil
}

func (s *subjectLog) truncateAfter(maxSeq int64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.rw.Lock()
	defer s.rw.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.log == nil {
		if s.pendingTruncate == noPendingTruncate || maxSeq < s.pendingTruncate {
			s.pendingTruncate = max(maxSeq, -1)
		}
		s.released = false // its bounds are the reopened log's now
		return nil
	}
	return s.truncateLocked(maxSeq)
}

// truncateLocked runs with rw held exclusively.
func (s *subjectLog) truncateLocked(maxSeq int64) error {
	// Never below the log's start: sequences deleted by retention cannot
	// be replayed into it anyway.
	target := max((max(maxSeq, -1)+1)*UnitSize, s.log.MinOffset())
	if target >= s.log.WrotePosition() {
		return nil
	}
	if err := s.log.Truncate(target); err != nil {
		return fmt.Errorf("truncate consumer log %s after sequence %d: %w", s.subject, maxSeq, err)
	}
	s.next.Store(target / UnitSize)
	s.markChanged()
	return nil
}

// dirty reports whether the log has unflushed units.
func (s *subjectLog) dirty() bool {
	s.rw.RLock()
	defer s.rw.RUnlock()
	return s.log != nil && !s.closed && s.log.FlushedPosition() < s.log.WrotePosition()
}

func (s *subjectLog) flush() error {
	s.rw.RLock()
	defer s.rw.RUnlock()
	if s.log == nil || s.closed || s.log.FlushedPosition() >= s.log.WrotePosition() {
		return nil
	}
	if err := s.log.Flush(); err != nil {
		return fmt.Errorf("flush consumer log %s: %w", s.subject, err)
	}
	return nil
}

func (s *subjectLog) deleteBefore(before time.Time) (int, error) {
	if !s.onDisk.Load() {
		return 0, nil
	}
	s.rw.RLock()
	opened := s.log != nil
	s.rw.RUnlock()
	if !opened && !s.hasExpiredFiles(before) {
		return 0, nil // spare opening a subject that has nothing to delete
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if ok, err := s.rlockOpen(false); !ok {
		return 0, err
	}
	defer s.rw.RUnlock()
	segs := s.log.Segments()
	var cut int64 = -1
	for _, seg := range segs[:max(len(segs)-1, 0)] {
		if !seg.ModTime.Before(before) {
			break
		}
		cut = seg.BaseOffset + seg.Size
	}
	if cut < 0 {
		return 0, nil
	}
	n, err := s.log.DeleteSegmentsBefore(cut)
	if err != nil {
		return n, fmt.Errorf("delete expired consumer log segments of %s: %w", s.subject, err)
	}
	return n, nil
}

// hasExpiredFiles reports whether an unopened subject has a segment file
// other than its newest modified before before.
func (s *subjectLog) hasExpiredFiles(before time.Time) bool {
	entries, err := s.m.fs.ReadDir(s.dir)
	if err != nil {
		return false
	}
	segments, old := 0, false
	for _, e := range entries {
		if e.IsDir() || !isSegmentName(e.Name()) {
			continue
		}
		segments++
		if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
			old = true
		}
	}
	return old && segments > 1
}

func (s *subjectLog) close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.rw.Lock()
	defer s.rw.Unlock()
	defer s.notify.shutdown()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.log == nil {
		return nil
	}
	err := s.log.Close() // flushes
	s.log = nil
	s.isOpen.Store(false)
	s.m.openLogs.Add(-1)
	if err != nil {
		return fmt.Errorf("close consumer log %s: %w", s.subject, err)
	}
	return nil
}
