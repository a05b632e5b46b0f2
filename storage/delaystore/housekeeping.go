package delaystore

import (
	"fmt"
	"path/filepath"
	"time"
)

// Housekeeping periods.
const (
	loadEvery      = time.Second
	retentionEvery = time.Minute
)

// housekeeper loads buckets as they enter the window, writes checkpoints
// and runs retention, until Close.
func (s *Store) housekeeper() {
	defer s.wg.Done()
	t := time.NewTicker(loadEvery)
	defer t.Stop()
	lastRetention := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.loadDue(); err != nil {
			s.log.Error("load schedule buckets", "error", err)
		}
		s.replayMu.Lock()
		err := s.checkpointLocked()
		s.replayMu.Unlock()
		if err != nil {
			s.log.Error("write replay checkpoint", "error", err)
		}
		if time.Since(lastRetention) >= retentionEvery {
			lastRetention = time.Now()
			if err := s.runRetention(); err != nil {
				s.log.Error("retention", "error", err)
			}
			s.unmapIdle()
			s.replayMu.Lock()
			s.closeIdle(false)
			s.replayMu.Unlock()
		}
	}
}

// loadDue loads the buckets that entered the window [.., now+LoadAhead].
func (s *Store) loadDue() error {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	target := s.bucketID(s.now() + s.cfg.LoadAhead.Milliseconds())
	if target <= s.loadedUpTo {
		return nil
	}
	if err := s.loadUpTo(target, false); err != nil {
		return err
	}
	s.loadedUpTo = target
	return nil
}

// checkpointLocked makes the buckets' new records durable, then records
// how far the message log was replayed and where each bucket ends. It
// writes nothing when nothing changed. replayMu is held.
func (s *Store) checkpointLocked() error {
	cp := replayCheckpoint{replayed: s.replayed, buckets: map[int64]bucketMark{}}
	now := s.now()
	s.bmu.RLock()
	bs := make([]*bucket, 0, len(s.buckets))
	for _, b := range s.buckets {
		bs = append(bs, b)
	}
	s.bmu.RUnlock()
	for _, b := range bs {
		if b.dirty {
			if err := b.log.Load().Flush(); err != nil { // dirty buckets are open
				return fmt.Errorf("checkpoint: flush schedule bucket %s: %w", b.dir, err)
			}
			b.dirty = false
		}
		s.mu.Lock()
		pending := b.pending
		s.mu.Unlock()
		// Done: loaded, nothing left to deliver, and over (appends carry
		// times of now or later, so nothing new will land in it).
		done := b.done || (b.id <= s.loadedUpTo && pending == 0 && (b.id+1)*s.scaleMs < now)
		b.done = done
		cp.buckets[b.id] = bucketMark{end: b.end, lastSeq: b.lastSeq, done: done}
	}
	// After the flushes above, so every bucket end a counts file names is
	// durable; every file at Close.
	if err := s.saveCounts(bs, s.closed.Load()); err != nil {
		return err
	}
	data := encodeCheckpoint(cp)
	if string(data) == s.ckptState {
		return nil
	}
	if err := saveFile(s.cfg.FS, s.ckptDir, ckptFile, data); err != nil {
		return fmt.Errorf("delay store: write replay checkpoint: %w", err)
	}
	s.ckptState = string(data)
	return nil
}

// runRetention deletes what the keep times allow (only with DeleteExpired):
// schedule buckets ScheduleCleanAfter past their end whose entries were all
// dispatched or cancelled; then dispatch-log segments whose last record is
// DispatchLogKeep old and that refer to no remaining bucket (so a restart
// can never deliver again what they recorded); then message-log segments
// last written MessageLogRetention ago and fully replayed into buckets.
func (s *Store) runRetention() error {
	if !s.cfg.DeleteExpired {
		return nil
	}
	now := s.now()
	if err := s.deleteBuckets(now); err != nil {
		return err
	}
	if err := s.deleteDispatchSegments(now); err != nil {
		return err
	}
	return s.deleteMessageSegments(now)
}

func (s *Store) deleteBuckets(now int64) error {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.bmu.RLock()
	var old []*bucket
	for id, b := range s.buckets {
		if id <= s.loadedUpTo && (id+1)*s.scaleMs+s.cfg.ScheduleCleanAfter.Milliseconds() <= now {
			old = append(old, b)
		}
	}
	s.bmu.RUnlock()
	for _, b := range old {
		s.mu.Lock()
		pending := b.pending
		s.mu.Unlock()
		if pending > 0 {
			continue // undelivered entries: kept until they are
		}
		// Rename first, so a crash never leaves half a bucket under its name.
		gone := b.dir + deletedSuffix
		if err := s.cfg.FS.Rename(b.dir, gone); err != nil {
			return fmt.Errorf("retention: rename schedule bucket %s: %w", b.dir, err)
		}
		if err := s.cfg.FS.SyncDir(s.scheduleDir); err != nil {
			return fmt.Errorf("retention: sync %s: %w", s.scheduleDir, err)
		}
		s.bmu.Lock()
		delete(s.buckets, b.id)
		s.bmu.Unlock()
		delete(s.skip, b.id)
		if l := b.log.Load(); l != nil {
			l.Close()
		}
		if err := s.removeDir(gone); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		s.metrics.deleted.WithLabelValues("schedule").Inc()
		s.log.Info("deleted schedule bucket", "bucket", filepath.Base(b.dir))
	}
	return nil
}

func (s *Store) deleteDispatchSegments(now int64) error {
	segs := s.disp.Segments()
	upTo := int64(-1)
	for _, sg := range segs[:max(len(segs)-1, 0)] {
		keep := false
		_, err := scan(s.disp, sg.BaseOffset, sg.BaseOffset+sg.Size, dispRecordSize, dispatchUnit, func(_ int64, b []byte) error {
			r, _ := decodeDisp(b)
			if r.at+s.cfg.DispatchLogKeep.Milliseconds() > now || s.getBucket(s.bucketID(r.scheduleTime)) != nil {
				keep = true
				return errStopScan
			}
			return nil
		})
		if err != nil && err != errStopScan {
			return fmt.Errorf("retention: %w", err)
		}
		if keep {
			break
		}
		upTo = sg.BaseOffset + sg.Size
	}
	if upTo < 0 {
		return nil
	}
	n, err := s.disp.DeleteSegmentsBefore(upTo)
	s.metrics.deleted.WithLabelValues("dispatch").Add(float64(n))
	if err != nil {
		return fmt.Errorf("retention: dispatch log: %w", err)
	}
	return nil
}

func (s *Store) deleteMessageSegments(now int64) error {
	s.replayMu.Lock()
	replayed := s.replayed
	s.replayMu.Unlock()
	segs := s.msgs.Segments()
	upTo := int64(-1)
	for _, sg := range segs[:max(len(segs)-1, 0)] {
		if sg.BaseOffset+sg.Size > replayed || sg.ModTime.IsZero() ||
			sg.ModTime.UnixMilli()+s.cfg.MessageLogRetention.Milliseconds() > now {
			break
		}
		upTo = sg.BaseOffset + sg.Size
	}
	if upTo < 0 {
		return nil
	}
	n, err := s.msgs.DeleteSegmentsBefore(upTo)
	s.metrics.deleted.WithLabelValues("message").Add(float64(n))
	if err != nil {
		return fmt.Errorf("retention: message log: %w", err)
	}
	return nil
}

// unmapIdle releases the mappings and file handles of sealed segments
// nobody read since the last call (they are mapped again when read).
func (s *Store) unmapIdle() {
	s.msgs.UnmapIdle()
	s.disp.UnmapIdle()
	s.bmu.RLock()
	defer s.bmu.RUnlock()
	for _, b := range s.buckets {
		if l := b.log.Load(); l != nil {
			l.UnmapIdle()
		}
	}
}
