package delaystore

import (
	"errors"
	"fmt"
	"os"

	"github.com/qmq-go/qmq/services/delay/wheel"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/segment"
)

// Replication copies the message log and the dispatch log byte for byte
// from a master's store to a slave's, like storage.Store's message and
// action logs: the master reads whole records (ReadRaw), the slave appends
// exactly those bytes at the same offsets (AppendRaw). The schedule buckets
// are not copied: the slave replays its copy of the message log into its
// own, and applies copied dispatch records to its wheel. A slave's store is
// opened with the master's segment sizes and gets no other writes.

// LogKind names a replicated log.
type LogKind uint8

// The replicated logs.
const (
	MessageLog LogKind = iota
	DispatchLog
)

func (k LogKind) String() string {
	if k == MessageLog {
		return "delay message log"
	}
	return "dispatch log"
}

func (s *Store) logOf(kind LogKind) (*segment.Log, int, unitFunc, int64) {
	if kind == MessageLog {
		return s.msgs, recHeaderSize, messageUnit, s.cfg.MessageSegmentSize
	}
	return s.disp, dispRecordSize, dispatchUnit, s.cfg.DispatchSegmentSize
}

// RawView is a zero-copy view of raw log bytes; call Release exactly once.
// The zero RawView is empty.
type RawView struct {
	v segment.View
	n int
}

// Bytes returns the viewed bytes (aliasing the log's mapping until Release).
func (r RawView) Bytes() []byte {
	if r.n == 0 {
		return nil
	}
	return r.v.Bytes()[:r.n]
}

// Len is len(Bytes()).
func (r RawView) Len() int { return r.n }

// Release unpins the log segment.
func (r RawView) Release() { r.v.Release() }

// File returns the file holding Bytes() and its position there, or nil.
func (r RawView) File() (*os.File, int64) {
	if r.n == 0 {
		return nil, 0
	}
	return r.v.File()
}

// ReadRaw returns the log's bytes from offset (a record boundary): whole
// records of one segment, as many as fit in max bytes but at least one; an
// EOF filler ends a read (its zero tail is implied). Empty at the end of the
// log. Errors wrap storage.ErrBeforeStart or storage.ErrBeyondEnd for
// offsets outside the log.
func (s *Store) ReadRaw(kind LogKind, offset int64, max int) (RawView, error) {
	seg, minUnit, _, _ := s.logOf(kind)
	v, n, err := seg.ReadUnits(offset, max, int64(minUnit), func(b []byte) (int, bool, error) {
		if kind == MessageLog {
			rec, err := decodeRecord(b, false)
			return rec.size, err == nil && rec.attr == attrEOF, err
		}
		return dispatchUnit(b, 0)
	})
	switch {
	case err == nil:
		return RawView{v: v, n: n}, nil
	case errors.Is(err, segment.ErrBeforeStart):
		return RawView{}, fmt.Errorf("%s: %w: %w", kind, storage.ErrBeforeStart, err)
	case errors.Is(err, segment.ErrBeyondEnd):
		return RawView{}, fmt.Errorf("%s: %w: %w", kind, storage.ErrBeyondEnd, err)
	}
	return RawView{}, fmt.Errorf("%s: %w", kind, err)
}

// AppendRaw appends bytes a master's ReadRaw returned for offset, which
// must be this log's end (else *segment.OffsetMismatchError). Every record
// is validated (CRCs, and message sequences equal to their offsets); the
// longest prefix of whole records is appended and the new end returned.
// Copied messages reach the buckets and the wheel with the next replay
// (at once with FlushSync); copied dispatch records take their entries out
// of the wheel.
func (s *Store) AppendRaw(kind LogKind, offset int64, b []byte) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	seg, minUnit, unit, segSize := s.logOf(kind)
	mu := &s.appendMu
	if kind == DispatchLog {
		mu = &s.dispMu
	}
	mu.Lock()
	end, taken, err := appendRaw(seg, kind.String(), segSize, minUnit, unit, offset, b)
	mu.Unlock()
	if err != nil {
		return end, err
	}
	if taken == 0 {
		return end, nil
	}
	if kind == MessageLog {
		notify(&s.msgNotify)
		if s.cfg.FlushSync {
			if err := s.msgs.Flush(); err != nil {
				return end, fmt.Errorf("delay store: flush message log: %w", err)
			}
			return end, s.replay()
		}
		return end, nil
	}
	notify(&s.dispNotify)
	s.applyDispatch(b[:taken])
	if s.cfg.FlushSync {
		if err := s.disp.Flush(); err != nil {
			return end, fmt.Errorf("delay store: flush dispatch log: %w", err)
		}
	}
	return end, nil
}

// applyDispatch takes replicated dispatch records' entries out of the
// wheel, or remembers them for when their bucket is loaded or their
// message replayed.
func (s *Store) applyDispatch(b []byte) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	for p := 0; p+dispRecordSize <= len(b); p += dispRecordSize {
		r, err := decodeDisp(b[p:])
		if err != nil {
			continue // validated by appendRaw
		}
		id := s.bucketID(r.scheduleTime)
		bk := s.getBucket(id)
		if id <= s.loadedUpTo {
			s.mu.Lock()
			removed := s.wheel.Remove(wheelKey(r))
			s.mu.Unlock()
			if len(removed) > 0 && bk != nil {
				s.countOutReplicated(bk, r)
				continue
			}
			// Not in the wheel: its record is not replayed yet (it is
			// counted out when it is), or it was taken out before.
		} else if _, dup := s.skip[id][r.seq]; !dup && bk != nil && r.seq <= bk.lastSeq {
			// A bucket beyond the window holding the record: counted out now.
			s.countOutReplicated(bk, r)
		}
		s.addSkip(id, r.seq)
	}
}

// countOutReplicated takes the message of a replicated dispatch record,
// which bk holds, out of the pending counts. replayMu is held.
func (s *Store) countOutReplicated(bk *bucket, r dispRecord) {
	subject, err := s.subjectOf(bk, r.seq)
	if err != nil {
		s.log.Warn("pending counts: a replicated dispatch record's message not found; its subject stays counted until the next restart",
			"sequence", r.seq, "bucket", bk.dir, "error", err)
		return
	}
	s.mu.Lock()
	s.countRemove(bk, subject, r.scheduleTime)
	s.mu.Unlock()
}

// LogEnd is where the log ends (its write position).
func (s *Store) LogEnd(kind LogKind) int64 {
	seg, _, _, _ := s.logOf(kind)
	return seg.WrotePosition()
}

// LogAppended returns a channel closed on the log's next append (take it
// before reading LogEnd to never miss one).
func (s *Store) LogAppended(kind LogKind) <-chan struct{} {
	if kind == MessageLog {
		return appended(&s.msgNotify)
	}
	return appended(&s.dispNotify)
}

// LogEmpty reports whether the log has no segment files.
func (s *Store) LogEmpty(kind LogKind) bool {
	seg, _, _, _ := s.logOf(kind)
	return seg.SegmentCount() == 0
}

// LogStart is the oldest offset still stored.
func (s *Store) LogStart(kind LogKind) int64 {
	seg, _, _, _ := s.logOf(kind)
	return seg.MinOffset()
}

// SegmentSize is the log's segment size (replicas need the same).
func (s *Store) SegmentSize(kind LogKind) int64 {
	_, _, _, size := s.logOf(kind)
	return size
}

// SetLogStart makes an empty log begin at offset (one of the master's
// segment bases), so a replica's files match its master's; it fails if
// the log has segments.
func (s *Store) SetLogStart(kind LogKind, offset int64) error {
	if kind == MessageLog {
		s.appendMu.Lock()
		defer s.appendMu.Unlock()
		if s.msgs.SegmentCount() > 0 {
			return fmt.Errorf("%s: cannot start at %d: %w", kind, offset, segment.ErrNotEmpty)
		}
		if err := s.msgs.SetStart(offset); err != nil {
			return err
		}
		s.replayMu.Lock()
		s.replayed = offset
		s.replayMu.Unlock()
		return nil
	}
	s.dispMu.Lock()
	defer s.dispMu.Unlock()
	if s.disp.SegmentCount() > 0 {
		return fmt.Errorf("%s: cannot start at %d: %w", kind, offset, segment.ErrNotEmpty)
	}
	return s.disp.SetStart(offset)
}

// ReplicaInfo describes the replicated logs to a replica.
type ReplicaInfo struct {
	MessageSegmentSize  int64
	DispatchSegmentSize int64
	// MessageStart and DispatchStart are the oldest offsets a replica can
	// copy from (an empty replica starts there with SetLogStart).
	MessageStart  int64
	DispatchStart int64
	MessageEnd    int64
	DispatchEnd   int64
}

// ReplicaInfo returns the segment sizes and the replicable ranges.
func (s *Store) ReplicaInfo() ReplicaInfo {
	return ReplicaInfo{
		MessageSegmentSize:  s.cfg.MessageSegmentSize,
		DispatchSegmentSize: s.cfg.DispatchSegmentSize,
		MessageStart:        s.msgs.MinOffset(),
		DispatchStart:       s.disp.MinOffset(),
		MessageEnd:          s.msgs.WrotePosition(),
		DispatchEnd:         s.disp.WrotePosition(),
	}
}

// wheelKey names the entry a dispatch record is about.
func wheelKey(r dispRecord) []wheel.Key {
	return []wheel.Key{{Time: r.scheduleTime, Seq: r.seq}}
}
