package delaystore

import (
	"fmt"
	"strings"
	"time"

	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/storage/segment"
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
	sizes := make([]int, len(msgs))
	for i := range msgs {
		sizes[i] = recordSize(msgs[i].Subject, msgs[i].MessageID, msgs[i].Payload)
	}
	s.appendMu.Lock()
	// One write for the whole request (per segment it spans), not one per
	// record: the system calls were half the receive path's time. Each
	// record's sequence is the offset the log hands it, after a filler if it
	// did not fit the active segment.
	n, err := s.msgs.AppendBatch(sizes, func(i int, off int64, b []byte) { encodeRecord(b, &msgs[i], off) })
	if err != nil {
		s.appendMu.Unlock()
		if n > 0 {
			notify(&s.msgNotify)
		}
		m := &msgs[n]
		return 0, fmt.Errorf("delay store: append %q/%q to the message log: %w", m.Subject, m.MessageID, err)
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
// after the last checkpoint) is not written again. The copies are gathered
// per bucket and written with one write per bucket (bucketBatch), not one
// per record.
func (s *Store) replay() error {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	target := s.msgs.FlushedPosition()
	if s.replayed >= target {
		return nil
	}
	r := replayBatch{s: s}
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
		// Sequences only grow, so a record gathered but not yet written
		// cannot be at or below lastSeq either.
		if rec.seq <= b.lastSeq {
			return nil
		}
		// A view of its own (a pin, no copy): scan releases rb's.
		v, err := s.msgs.Read(off, len(rb))
		if err != nil {
			return fmt.Errorf("read message-log record %d: %w", off, err)
		}
		r.add(b, id, rec.seq, rec.scheduleTime, v)
		if r.bytes >= maxReplayBatch {
			return r.write()
		}
		return nil
	})
	if err == nil {
		err = r.write()
	} else {
		// What was gathered before the failure still goes to its buckets:
		// those records are durable in the message log.
		if werr := r.write(); werr != nil {
			s.log.Error("replay: write gathered records after a failure", "error", werr)
		}
	}
	if err == nil && end != target {
		err = fmt.Errorf("invalid record at message-log offset %d", end)
	}
	// Whatever was written is in the buckets: account for it even on error.
	if len(r.adds) > 0 {
		s.mu.Lock()
		for _, e := range r.adds {
			s.wheel.Add(e.item())
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

// maxReplayBatch bounds the bytes replay gathers before writing them to
// their buckets: a replay after a restart may cover a whole message-log
// segment.
const maxReplayBatch = 4 << 20

// replayBatch gathers one replay's bucket copies (under replayMu).
type replayBatch struct {
	s *Store
	// The buckets gathered for, in first-seen order (so writes are
	// deterministic). A replay usually touches a few (with FlushSync, one
	// request's worth): they are found by a scan, and only past
	// replayScanBuckets of them (a replay after a restart, schedule times
	// spread over months) through byBucket.
	order    []*bucketBatch
	last     *bucketBatch
	byBucket map[*bucket]*bucketBatch
	bytes    int
	// Wheel entries of the records written (the counts are taken as they
	// are written).
	adds []Entry
}

// bucketBatch is the records gathered for one bucket, in sequence order.
// The records are views of the message log (pins, not copies).
type bucketBatch struct {
	b     *bucket
	id    int64
	recs  []segment.View
	sizes []int
	seqs  []int64
	times []int64
}

func (r *replayBatch) add(b *bucket, id, seq, scheduleTime int64, v segment.View) {
	bb := r.last
	if bb == nil || bb.b != b {
		bb = r.find(b)
		if bb == nil {
			bb = &bucketBatch{b: b, id: id}
			r.order = append(r.order, bb)
			if r.byBucket != nil {
				r.byBucket[b] = bb
			}
		}
		r.last = bb
	}
	size := len(v.Bytes())
	bb.recs = append(bb.recs, v)
	bb.sizes = append(bb.sizes, size)
	bb.seqs = append(bb.seqs, seq)
	bb.times = append(bb.times, scheduleTime)
	r.bytes += size
}

// write appends the gathered records to their buckets, one AppendBatch per
// bucket, and records what was written (lastSeq, end, wheel entries) even
// when a bucket fails part way, so a later replay skips exactly those.
func (r *replayBatch) write() error {
	s := r.s
	var firstErr error
	for _, bb := range r.order {
		if firstErr != nil {
			break
		}
		l, err := s.bucketLog(bb.b)
		if err != nil {
			firstErr = err
			break
		}
		boffs := make([]int64, len(bb.sizes))
		n, err := l.AppendBatch(bb.sizes, func(i int, off int64, dst []byte) {
			boffs[i] = off
			copy(dst, bb.recs[i].Bytes())
		})
		if n > 0 {
			b := bb.b
			b.lastSeq, b.dirty, b.done = bb.seqs[n-1], true, false
			b.end, b.lastWrite = l.WrotePosition(), time.Now()
		}
		// Count what was written, in every bucket; only loaded buckets'
		// entries go to the wheel. A sequence in skip was dispatched or
		// cancelled before its record got here (a replica copies the two
		// logs separately): it is not pending, and a loaded bucket's skip
		// has no further use for it.
		loaded := bb.id <= s.loadedUpTo
		sk := s.skip[bb.id]
		s.mu.Lock()
		for i := 0; i < n; i++ {
			if _, ok := sk[bb.seqs[i]]; ok {
				if loaded {
					delete(sk, bb.seqs[i])
				}
				bb.b.removed++
				bb.b.countsVersion++
				continue
			}
			rec, _ := decodeRecord(bb.recs[i].Bytes(), false)
			s.countAdd(bb.b, rec.subject, bb.times[i])
			if loaded {
				r.adds = append(r.adds, Entry{ScheduleTime: bb.times[i], Sequence: bb.seqs[i], offset: boffs[i], size: int32(bb.sizes[i])})
			}
		}
		s.mu.Unlock()
		if err != nil {
			firstErr = fmt.Errorf("append to schedule bucket %s: %w", bb.b.dir, err)
		}
	}
	r.release()
	return firstErr
}

// release unpins the gathered records and starts over.
func (r *replayBatch) release() {
	for _, bb := range r.order {
		for _, v := range bb.recs {
			v.Release()
		}
	}
	r.order, r.last, r.byBucket, r.bytes = nil, nil, nil, 0
}

// replayScanBuckets: up to this many buckets in one replay batch are found
// by a scan, more through a map.
const replayScanBuckets = 16

func (r *replayBatch) find(b *bucket) *bucketBatch {
	if r.byBucket != nil {
		return r.byBucket[b]
	}
	for _, x := range r.order {
		if x.b == b {
			return x
		}
	}
	if len(r.order) >= replayScanBuckets {
		r.byBucket = make(map[*bucket]*bucketBatch, 2*len(r.order))
		for _, x := range r.order {
			r.byBucket[x.b] = x
		}
	}
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
