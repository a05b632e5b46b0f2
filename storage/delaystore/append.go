package delaystore

import (
	"fmt"
	"strings"
	"time"

	"github.com/qmq-go/qmq/storage/diskspace"
)

// Append writes msgs to the message log and returns the log's end after
// them (what a replica must reach to hold them). With FlushSync they are
// durable when Append returns, and already in their schedule buckets (and
// in the wheel if their bucket is loaded); otherwise both happen at the
// next background flush, within FlushInterval. Schedule times are taken as
// given: clamping past or far-future times is the caller's.
func (s *Store) Append(msgs []Message) (end int64, err error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	for i := range msgs {
		if err := s.validate(&msgs[i]); err != nil {
			return 0, err
		}
	}
	if err := s.checkDisk(); err != nil {
		return 0, err
	}
	s.appendMu.Lock()
	for i := range msgs {
		m := &msgs[i]
		n := recordSize(m.Subject, m.MessageID, m.Payload)
		// The record's sequence is its offset: where it will land, after a
		// filler if it does not fit the active segment.
		pos := s.msgs.WrotePosition()
		if segEnd := s.msgs.SegmentEnd(pos); segEnd >= 0 && pos+int64(n) > segEnd {
			pos = segEnd
		}
		off, err := s.msgs.Append(n, func(b []byte) { encodeRecord(b, m, pos) })
		if err == nil && off != pos {
			err = fmt.Errorf("record landed at %d, not at its sequence %d", off, pos)
		}
		if err != nil {
			s.appendMu.Unlock()
			if i > 0 {
				notify(&s.msgNotify)
			}
			return 0, fmt.Errorf("delay store: append %q/%q to the message log: %w", m.Subject, m.MessageID, err)
		}
	}
	end = s.msgs.WrotePosition()
	s.appendMu.Unlock()
	notify(&s.msgNotify)
	s.metrics.appended.Add(float64(len(msgs)))
	if s.cfg.FlushSync {
		if err := s.msgs.Flush(); err != nil {
			return end, fmt.Errorf("delay store: flush message log: %w", err)
		}
		if err := s.replay(); err != nil {
			return end, err
		}
	}
	return end, nil
}

// maxScheduleTime is the last millisecond of the year 9999.
const maxScheduleTime = 253402300799999

func (s *Store) validate(m *Message) error {
	switch {
	case m.ScheduleTime <= 0:
		return fmt.Errorf("delay store: message %q/%q: schedule time %d is not a positive unix-millisecond time", m.Subject, m.MessageID, m.ScheduleTime)
	case m.ScheduleTime > maxScheduleTime:
		// Bucket names have four-digit years.
		return fmt.Errorf("delay store: message %q/%q: schedule time %d is after the year 9999", m.Subject, m.MessageID, m.ScheduleTime)
	case len(m.Subject) == 0 || len(m.Subject) > maxFieldBytes || strings.IndexByte(m.Subject, 0) >= 0:
		return fmt.Errorf("delay store: invalid subject %q (1..%d bytes, no NUL)", m.Subject, maxFieldBytes)
	case len(m.MessageID) == 0 || len(m.MessageID) > maxFieldBytes:
		return fmt.Errorf("delay store: subject %q: invalid message id %q (1..%d bytes)", m.Subject, m.MessageID, maxFieldBytes)
	case len(m.Payload) == 0 || len(m.Payload) > s.cfg.MaxMessageSize:
		return fmt.Errorf("delay store: message %q/%q: payload of %d bytes (1..%d, per.message.size)", m.Subject, m.MessageID, len(m.Payload), s.cfg.MaxMessageSize)
	}
	return nil
}

// checkDisk refuses appends while free space is below DiskFreeMin, measured
// at most once a second.
func (s *Store) checkDisk() error {
	if s.cfg.DiskFreeMin <= 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	if last := s.lastDisk.Load(); now-last < 1000 && s.lastDisk.CompareAndSwap(last, last) {
		if p := s.diskErr.Load(); p != nil {
			return *p
		}
		return nil
	}
	s.lastDisk.Store(now)
	u, err := s.cfg.FS.Usage(s.cfg.Root)
	if err != nil || u.Free >= s.cfg.DiskFreeMin {
		s.diskErr.Store(nil)
		return nil // unmeasurable file systems are not refused
	}
	e := fmt.Errorf("delay store %s: %w", s.cfg.Root, &diskspace.FullError{Path: s.cfg.Root, Free: u.Free, Total: u.Total, Needed: s.cfg.DiskFreeMin, What: "the free-space reserve (DiskFreeMin)"})
	s.diskErr.Store(&e)
	return e
}

// replay copies the durable message-log records not replayed yet into
// their schedule buckets, and puts those of loaded buckets into the wheel.
// A record whose sequence its bucket already holds (written before a crash,
// after the last checkpoint) is not written again.
func (s *Store) replay() error {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	target := s.msgs.FlushedPosition()
	if s.replayed >= target {
		return nil
	}
	var adds []Entry
	counts := map[*bucket]int64{}
	end, err := scan(s.msgs, s.replayed, target, recHeaderSize, func(b []byte, off int64) (int, bool, error) {
		rec, err := decodeRecord(b, false) // validated when written, recovered or replicated
		if err == nil && rec.attr == attrMessage && rec.seq != off {
			err = errBadHeader
		}
		return rec.size, err == nil && rec.attr == attrEOF, err
	}, func(off int64, rb []byte) error {
		rec, _ := decodeRecord(rb, false)
		id := s.bucketID(rec.scheduleTime)
		b, err := s.bucketFor(id)
		if err != nil {
			return err
		}
		if rec.seq <= b.lastSeq {
			return nil
		}
		l, err := s.bucketLog(b)
		if err != nil {
			return err
		}
		boff, err := l.Append(len(rb), func(dst []byte) { copy(dst, rb) })
		if err != nil {
			return fmt.Errorf("append to schedule bucket %s: %w", b.dir, err)
		}
		b.lastSeq, b.dirty, b.done = rec.seq, true, false
		b.end, b.lastWrite = l.WrotePosition(), time.Now()
		if id > s.loadedUpTo {
			return nil
		}
		if sk := s.skip[id]; sk != nil {
			if _, ok := sk[rec.seq]; ok {
				delete(sk, rec.seq)
				return nil
			}
		}
		adds = append(adds, Entry{ScheduleTime: rec.scheduleTime, Sequence: rec.seq, offset: boff, size: int32(rec.size)})
		counts[b]++
		return nil
	})
	if err == nil && end != target {
		err = fmt.Errorf("invalid record at message-log offset %d", end)
	}
	// Whatever was written is in the buckets: account for it even on error.
	if len(adds) > 0 {
		s.mu.Lock()
		for _, e := range adds {
			s.wheel.Add(e.item())
		}
		for b, n := range counts {
			b.pending += n
		}
		s.wakeLocked()
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("delay store: replay message log from %d: %w", s.replayed, err)
	}
	s.replayed = end
	return nil
}

// flusher makes the logs durable every FlushInterval (without FlushSync)
// and replays what became durable.
func (s *Store) flusher() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.msgs.Flush(); err != nil {
			s.log.Error("flush message log", "error", err)
			continue
		}
		if err := s.disp.Flush(); err != nil {
			s.log.Error("flush dispatch log", "error", err)
		}
		if err := s.replay(); err != nil {
			s.log.Error("replay", "error", err)
		}
	}
}
