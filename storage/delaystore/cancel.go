package delaystore

import (
	"fmt"
	"sort"

	"github.com/qmq-go/qmq/services/delay/wheel"
)

// Cancel withdraws the scheduled, undelivered message subject/messageID
// (every copy, if the producer sent it more than once), recording it in the
// dispatch log like a delivery, so it survives restarts and replicates. It
// returns false if no such message is scheduled: unknown, already
// delivered or cancelled, or handed out by Due and not yet marked (the
// sender may be delivering it). Cancel scans the schedule buckets on disk:
// it costs in proportion to the scheduled bytes and is meant to be rare.
func (s *Store) Cancel(subject, messageID string) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	// Recent appends must be in their buckets to be found.
	if err := s.msgs.Flush(); err != nil {
		return false, fmt.Errorf("delay store: cancel: flush message log: %w", err)
	}
	if err := s.replay(); err != nil {
		return false, err
	}
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	s.bmu.RLock()
	var bs []*bucket
	for _, b := range s.buckets {
		if !b.done {
			bs = append(bs, b)
		}
	}
	s.bmu.RUnlock()
	sort.Slice(bs, func(i, j int) bool { return bs[i].id < bs[j].id })
	var found []Entry
	for _, b := range bs {
		l, err := s.bucketLog(b)
		if err != nil {
			return false, fmt.Errorf("delay store: cancel %q/%q: %w", subject, messageID, err)
		}
		_, err = scan(l, l.MinOffset(), -1, recHeaderSize, func(rb []byte, _ int64) (int, bool, error) {
			rec, err := decodeRecord(rb, false)
			return rec.size, err == nil && rec.attr == attrEOF, err
		}, func(off int64, rb []byte) error {
			rec, _ := decodeRecord(rb, false)
			if string(rec.subject) == subject && string(rec.msgID) == messageID {
				found = append(found, Entry{ScheduleTime: rec.scheduleTime, Sequence: rec.seq, offset: off, size: int32(rec.size)})
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("delay store: cancel %q/%q: %w", subject, messageID, err)
		}
	}
	var cancel []Entry
	for _, e := range found {
		id := s.bucketID(e.ScheduleTime)
		if id <= s.loadedUpTo {
			s.mu.Lock()
			removed := s.wheel.Remove([]wheel.Key{{Time: e.ScheduleTime, Seq: e.Sequence}})
			s.mu.Unlock()
			if len(removed) > 0 {
				cancel = append(cancel, e)
			}
			continue
		}
		if _, ok := s.skip[id][e.Sequence]; !ok {
			cancel = append(cancel, e)
		}
	}
	if len(cancel) == 0 {
		return false, nil
	}
	if err := s.appendDispatch(kindCancelled, cancel); err != nil {
		// Removed from the wheel but not recorded: it is delivered after a
		// restart unless a retry of Cancel succeeds (and still counted
		// pending meanwhile).
		return false, err
	}
	// Counted out after the dispatch record is written: a counts file must
	// not reflect a cancel the dispatch log does not hold (countsfile.go).
	s.mu.Lock()
	for _, e := range cancel {
		if b := s.getBucket(s.bucketID(e.ScheduleTime)); b != nil {
			s.countRemove(b, []byte(subject), e.ScheduleTime)
		}
	}
	s.mu.Unlock()
	for _, e := range cancel {
		if id := s.bucketID(e.ScheduleTime); id > s.loadedUpTo {
			s.addSkip(id, e.Sequence)
		}
	}
	s.metrics.cancelled.Add(float64(len(cancel)))
	return true, nil
}
