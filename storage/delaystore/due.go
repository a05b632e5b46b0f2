package delaystore

import (
	"bytes"
	"context"
	"fmt"
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
	l := b.log.Load()
	if l == nil {
		return Message{}, fmt.Errorf("delay store: read entry %d (schedule time %d): its bucket %s is not loaded", e.Sequence, e.ScheduleTime, b.dir)
	}
	v, err := l.Read(e.offset, int(e.size))
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
