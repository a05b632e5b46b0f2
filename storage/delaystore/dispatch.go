package delaystore

import (
	"fmt"
)

// MarkDispatched records that es were delivered (durably when it returns
// with FlushSync, else within FlushInterval): Due never returns them again,
// also after a restart.
func (s *Store) MarkDispatched(es []Entry) error {
	if len(es) == 0 {
		return nil
	}
	if err := s.appendDispatch(kindDispatched, es); err != nil {
		return err
	}
	s.mu.Lock()
	s.inflight = max(0, s.inflight-int64(len(es)))
	for _, e := range es {
		s.removeLoadedLocked(e)
	}
	s.mu.Unlock()
	s.metrics.dispatched.Add(float64(len(es)))
	return nil
}

// appendDispatch appends one dispatch record per entry and flushes per the
// flush policy.
func (s *Store) appendDispatch(kind uint8, es []Entry) error {
	if s.closed.Load() {
		return ErrClosed
	}
	at := s.now()
	s.dispMu.Lock()
	for i, e := range es {
		r := dispRecord{kind: kind, seq: e.Sequence, scheduleTime: e.ScheduleTime, at: at}
		if _, err := s.disp.Append(dispRecordSize, func(b []byte) { encodeDisp(b, r) }); err != nil {
			s.dispMu.Unlock()
			if i > 0 {
				notify(&s.dispNotify)
			}
			return fmt.Errorf("delay store: append to the dispatch log (entry %d, %d of %d): %w", e.Sequence, i, len(es), err)
		}
	}
	s.dispMu.Unlock()
	notify(&s.dispNotify)
	if s.cfg.FlushSync {
		if err := s.disp.Flush(); err != nil {
			return fmt.Errorf("delay store: flush dispatch log: %w", err)
		}
	}
	return nil
}

// removeLoadedLocked takes e, an entry of a loaded bucket just dispatched
// or cancelled, out of the pending counts. Its subject is read from its
// record in the bucket (mapped, and usually just read by the sender): the
// wheel keeps 32 bytes per entry and no subject. mu is held.
func (s *Store) removeLoadedLocked(e Entry) {
	b := s.getBucket(s.bucketID(e.ScheduleTime))
	if b == nil {
		return
	}
	l := b.log.Load() // loaded buckets stay open
	if l == nil {
		s.log.Warn("pending counts: the bucket of a dispatched entry is closed", "bucket", b.dir, "sequence", e.Sequence)
		return
	}
	v, err := l.Read(e.offset, int(e.size))
	if err != nil {
		s.log.Warn("pending counts: cannot read a dispatched entry's record", "bucket", b.dir, "sequence", e.Sequence, "error", err)
		return
	}
	if rec, err := decodeRecord(v.Bytes(), false); err == nil && rec.seq == e.Sequence {
		s.countRemove(b, rec.subject, e.ScheduleTime)
	}
	v.Release()
}
