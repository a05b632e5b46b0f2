package delaystore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/qmq-go/qmq/services/delay/wheel"
)

// maxWait bounds one wait in Due, so that a Config.Now that is not the wall
// clock (tests) is still followed.
const maxWait = 200 * time.Millisecond

// Due blocks until at least one entry is due (ScheduleTime <= Now()) and
// returns up to max of them, earliest second first. A returned entry is not
// returned again by this Store; after a restart it is, until
// MarkDispatched records it.
func (s *Store) Due(ctx context.Context, max int) ([]Entry, error) {
	if max <= 0 {
		return nil, fmt.Errorf("delay store: Due of %d entries", max)
	}
	var items []wheel.Item
	for {
		if s.closed.Load() {
			return nil, ErrClosed
		}
		now := s.now()
		s.mu.Lock()
		items = s.wheel.PopDue(now, max, items[:0])
		if len(items) > 0 {
			s.inflight += int64(len(items))
			s.mu.Unlock()
			out := make([]Entry, len(items))
			for i, it := range items {
				out[i] = entryOf(it)
			}
			return out, nil
		}
		next, ok := s.wheel.Next()
		wake := s.wake
		s.mu.Unlock()
		wait := maxWait
		if ok {
			wait = min(wait, time.Duration(next-now)*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.stop:
			t.Stop()
			return nil, ErrClosed
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Read returns the message of e from its schedule bucket (so it does not
// need the message log, whose old segments retention may have deleted).
func (s *Store) Read(e Entry) (Message, error) {
	b := s.getBucket(s.bucketID(e.ScheduleTime))
	if b == nil {
		return Message{}, fmt.Errorf("delay store: read entry %d (schedule time %d): its schedule bucket %s does not exist",
			e.Sequence, e.ScheduleTime, bucketName(s.bucketID(e.ScheduleTime), s.cfg.SegmentScale))
	}
	v, err := b.log.Read(e.offset, int(e.size))
	if err != nil {
		return Message{}, fmt.Errorf("delay store: read entry %d at %d in bucket %s: %w", e.Sequence, e.offset, b.dir, err)
	}
	defer v.Release()
	rec, err := decodeRecord(v.Bytes(), true)
	if err == nil && (rec.seq != e.Sequence || rec.attr != attrMessage) {
		err = errBadHeader
	}
	if err != nil {
		return Message{}, fmt.Errorf("delay store: read entry %d at %d in bucket %s: %w", e.Sequence, e.offset, b.dir, err)
	}
	return Message{
		ScheduleTime: rec.scheduleTime,
		Subject:      string(rec.subject),
		MessageID:    string(rec.msgID),
		Payload:      bytes.Clone(rec.payload),
	}, nil
}

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
		if b := s.getBucket(s.bucketID(e.ScheduleTime)); b != nil && b.pending > 0 {
			b.pending--
		}
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
		_, err := scan(b.log, b.log.MinOffset(), -1, recHeaderSize, func(rb []byte, _ int64) (int, bool, error) {
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
			if len(removed) > 0 {
				if b := s.getBucket(id); b != nil && b.pending > 0 {
					b.pending--
				}
				cancel = append(cancel, e)
			}
			s.mu.Unlock()
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
		// restart unless a retry of Cancel succeeds.
		return false, err
	}
	for _, e := range cancel {
		if id := s.bucketID(e.ScheduleTime); id > s.loadedUpTo {
			s.addSkip(id, e.Sequence)
		}
	}
	s.metrics.cancelled.Add(float64(len(cancel)))
	return true, nil
}

// Stats describes the store.
type Stats struct {
	// Scheduled counts the entries of the loaded window not yet dispatched
	// or cancelled: in the wheel plus handed out by Due and not yet marked.
	Scheduled int64
	InWheel   int
	InFlight  int64
	// LoadedBuckets are the buckets in the wheel's window; Buckets all on disk.
	LoadedBuckets, Buckets int
	MessageLogEnd          int64
	DispatchLogEnd         int64
	// Replayed is the message-log offset replayed into the schedule buckets.
	Replayed int64
	// OldestDueLateness is how late the earliest due entry still in the
	// wheel is (0 if none is due).
	OldestDueLateness time.Duration
}

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	st := Stats{MessageLogEnd: s.msgs.WrotePosition(), DispatchLogEnd: s.disp.WrotePosition()}
	now := s.now()
	s.mu.Lock()
	st.InWheel = s.wheel.Len()
	st.InFlight = s.inflight
	st.Scheduled = int64(st.InWheel) + s.inflight
	if next, ok := s.wheel.Next(); ok && next <= now {
		st.OldestDueLateness = time.Duration(now-next) * time.Millisecond
	}
	s.mu.Unlock()
	s.replayMu.Lock()
	loaded, replayed := s.loadedUpTo, s.replayed
	s.replayMu.Unlock()
	st.Replayed = replayed
	s.bmu.RLock()
	st.Buckets = len(s.buckets)
	for id := range s.buckets {
		if id <= loaded {
			st.LoadedBuckets++
		}
	}
	s.bmu.RUnlock()
	return st
}

func wheelKey(r dispRecord) []wheel.Key {
	return []wheel.Key{{Time: r.scheduleTime, Seq: r.seq}}
}
