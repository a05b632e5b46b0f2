package delaystore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/storage/segment"
)

// bucket is one schedule bucket: the records of every message whose
// schedule time falls in [id*scale, (id+1)*scale), in sequence order, in a
// sparse segment log of its own directory.
type bucket struct {
	id  int64
	dir string
	// log is nil while the bucket is closed for idleness (see closeIdle);
	// it is set and cleared under Store.replayMu, and never cleared while
	// the bucket is loaded, so Read may load it without the lock.
	log atomic.Pointer[segment.Log]
	// Under Store.replayMu.
	end       int64     // end of the bucket's records (its log's write position)
	lastSeq   int64     // highest sequence appended (-1: none)
	dirty     bool      // appended since the last checkpoint
	done      bool      // loaded earlier, every entry dispatched: not scanned again
	lastWrite time.Time // wall clock of the last append or open
	// Under Store.mu (counts.go): pending counts the bucket's messages not
	// yet dispatched or cancelled, subjects the same per subject, removed
	// the dispatched or cancelled ones among its records; countsVersion
	// moves with every change of them.
	pending       int64
	subjects      map[string]*subjectCount
	removed       int64
	countsVersion int64
	// Under Store.replayMu: the countsVersion its counts file holds, and when
	// it was written.
	savedVersion int64
	savedAt      time.Time
}

const bucketNameLayout = "200601021504"

func bucketName(id int64, scale time.Duration) string {
	return time.UnixMilli(id * scale.Milliseconds()).UTC().Format(bucketNameLayout)
}

func parseBucketName(name string, scale time.Duration) (int64, bool) {
	if len(name) != len(bucketNameLayout) {
		return 0, false
	}
	t, err := time.Parse(bucketNameLayout, name)
	if err != nil || t.UnixMilli()%scale.Milliseconds() != 0 {
		return 0, false
	}
	return t.UnixMilli() / scale.Milliseconds(), true
}

func (s *Store) bucketID(scheduleTime int64) int64 { return scheduleTime / s.scaleMs }

func (s *Store) openBucketLog(dir string) (*segment.Log, error) {
	return segment.Open(segment.Config{
		FS:           s.cfg.FS,
		Dir:          dir,
		SegmentSize:  s.cfg.MessageSegmentSize,
		SizeKey:      "per.segment.file.size",
		Filler:       fillEOF,
		Logger:       s.log,
		Sparse:       true, // most buckets hold far less than a segment
		WriteThrough: true,
	})
}

// openBuckets opens every bucket under schedule_log and recovers it: records
// beyond the checkpointed end are validated, and the bucket is cut at the
// first invalid one (the replay from the checkpoint rewrites what was lost).
func (s *Store) openBuckets(cp replayCheckpoint) error {
	entries, err := s.cfg.FS.ReadDir(s.scheduleDir)
	if err != nil {
		return fmt.Errorf("list %s: %w", s.scheduleDir, err)
	}
	window := s.bucketID(s.now() + s.cfg.LoadAhead.Milliseconds())
	for _, e := range entries {
		path := filepath.Join(s.scheduleDir, e.Name())
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			// A deletion a crash interrupted: finish it.
			if err := s.removeDir(path); err != nil {
				return err
			}
			continue
		}
		id, ok := parseBucketName(e.Name(), s.cfg.SegmentScale)
		if !ok || !e.IsDir() {
			continue
		}
		l, err := s.openBucketLog(path)
		if err != nil {
			return fmt.Errorf("open schedule bucket: %w", err)
		}
		b := &bucket{id: id, dir: path, lastSeq: -1, lastWrite: time.Now()}
		b.log.Store(l)
		s.buckets[id] = b
		from := int64(0)
		if m, ok := cp.buckets[id]; ok {
			from, b.lastSeq, b.done = m.end, m.lastSeq, m.done
		}
		if from > l.WrotePosition() {
			s.log.Warn("schedule bucket shorter than its checkpoint: rescanning", "bucket", path, "checkpoint_end", from, "size", l.WrotePosition())
			from, b.lastSeq, b.done = 0, -1, false
		}
		end, err := recoverLog(l, "schedule bucket "+path, from, false, recHeaderSize, bucketUnit, func(off int64, rb []byte) error {
			rec, _ := decodeRecord(rb, false)
			b.lastSeq = max(b.lastSeq, rec.seq)
			return nil
		})
		if err != nil {
			return err
		}
		if end != from {
			b.done = false // records the checkpoint did not know of
		}
		b.end = end
		if id > window {
			// Outside the window: closed until written or loaded.
			b.log.Store(nil)
			if err := l.Close(); err != nil {
				return fmt.Errorf("close schedule bucket %s: %w", path, err)
			}
		}
	}
	return nil
}

// bucketFor returns the bucket of id, creating it. replayMu is held.
func (s *Store) bucketFor(id int64) (*bucket, error) {
	s.bmu.RLock()
	b := s.buckets[id]
	s.bmu.RUnlock()
	if b != nil {
		return b, nil
	}
	dir := filepath.Join(s.scheduleDir, bucketName(id, s.cfg.SegmentScale))
	l, err := s.openBucketLog(dir)
	if err != nil {
		return nil, fmt.Errorf("create schedule bucket: %w", err)
	}
	// The bucket directory must survive a crash along with its files.
	if err := s.cfg.FS.SyncDir(s.scheduleDir); err != nil {
		l.Close()
		return nil, fmt.Errorf("sync %s: %w", s.scheduleDir, err)
	}
	b = &bucket{id: id, dir: dir, lastSeq: -1, end: l.WrotePosition(), lastWrite: time.Now()}
	b.log.Store(l)
	s.bmu.Lock()
	s.buckets[id] = b
	s.bmu.Unlock()
	return b, nil
}

func (s *Store) getBucket(id int64) *bucket {
	s.bmu.RLock()
	defer s.bmu.RUnlock()
	return s.buckets[id]
}

// loadBucket puts b's undispatched entries into the wheel. With recount
// (Open) it also counts them per subject: the counts of a bucket in the
// window are not saved (countsfile.go), so Open takes them from this scan.
// Otherwise they are known already. replayMu is held.
func (s *Store) loadBucket(b *bucket, recount bool) error {
	skip := s.skip[b.id]
	var batch []Entry
	var counts map[string]*subjectCount
	removed := int64(0)
	if recount {
		counts = map[string]*subjectCount{}
	}
	flush := func() {
		s.mu.Lock()
		for _, e := range batch {
			s.wheel.Add(e.item())
		}
		s.wakeLocked()
		s.mu.Unlock()
		batch = batch[:0]
	}
	if !b.done {
		l, err := s.bucketLog(b)
		if err != nil {
			return err
		}
		_, err = scan(l, l.MinOffset(), -1, recHeaderSize, func(rb []byte, _ int64) (int, bool, error) {
			rec, err := decodeRecord(rb, false) // validated when written or recovered
			return rec.size, err == nil && rec.attr == attrEOF, err
		}, func(off int64, rb []byte) error {
			rec, _ := decodeRecord(rb, false)
			if _, ok := skip[rec.seq]; ok {
				delete(skip, rec.seq)
				removed++
				return nil
			}
			if counts != nil {
				sc := counts[string(rec.subject)]
				if sc == nil {
					sc = &subjectCount{}
					counts[string(rec.subject)] = sc
				}
				sc.add(rec.scheduleTime)
			}
			batch = append(batch, Entry{ScheduleTime: rec.scheduleTime, Sequence: rec.seq, offset: off, size: int32(rec.size)})
			if len(batch) == 4096 {
				flush()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("load schedule bucket %s: %w", b.dir, err)
		}
		flush()
	}
	if recount {
		s.mu.Lock()
		s.setCounts(b, counts, removed)
		s.mu.Unlock()
	}
	// Later records have higher sequences: skips at or below lastSeq can
	// no longer match.
	for seq := range skip {
		if seq <= b.lastSeq {
			delete(skip, seq)
		}
	}
	if len(skip) == 0 {
		delete(s.skip, b.id)
	}
	return nil
}

const deletedSuffix = ".deleted"

// removeDir removes a bucket directory renamed to *.deleted, file by file.
func (s *Store) removeDir(path string) error {
	entries, err := s.cfg.FS.ReadDir(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("list %s: %w", path, err)
	}
	for _, e := range entries {
		if err := s.cfg.FS.Remove(filepath.Join(path, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", filepath.Join(path, e.Name()), err)
		}
	}
	if err := s.cfg.FS.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// bucketLog returns b's log, reopening it if it was closed for idleness.
// replayMu is held.
func (s *Store) bucketLog(b *bucket) (*segment.Log, error) {
	if l := b.log.Load(); l != nil {
		return l, nil
	}
	l, err := s.openBucketLog(b.dir)
	if err != nil {
		return nil, fmt.Errorf("reopen schedule bucket: %w", err)
	}
	// A reopened log ends at its last segment's end until told where its
	// records end (the rest is zero already; Truncate also makes it so).
	if err := l.Truncate(b.end); err != nil {
		l.Close()
		return nil, fmt.Errorf("reopen schedule bucket %s at %d: %w", b.dir, b.end, err)
	}
	b.log.Store(l)
	b.lastWrite = time.Now()
	return l, nil
}

// idleAfter is how long a bucket outside the window stays open after its
// last append: each open bucket holds a file descriptor and a mapping, and
// a store may have tens of thousands of buckets.
const idleAfter = time.Minute

// closeIdle closes the logs of the buckets outside the loaded window that
// were not appended to for idleAfter (all of them with all set), once
// their records are durable. replayMu is held.
func (s *Store) closeIdle(all bool) {
	s.bmu.RLock()
	defer s.bmu.RUnlock()
	for id, b := range s.buckets {
		l := b.log.Load()
		if l == nil || id <= s.loadedUpTo || b.dirty || (!all && time.Since(b.lastWrite) < idleAfter) {
			continue
		}
		b.log.Store(nil)
		if err := l.Close(); err != nil {
			s.log.Warn("close idle schedule bucket", "bucket", b.dir, "error", err)
		}
	}
}
