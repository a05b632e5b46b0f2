package messagelog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/storage/segment"
)

// Raw access for master/slave replication: a master reads its log's bytes
// and a slave appends exactly those bytes at the same offsets, so the two
// logs are byte-for-byte identical (services/replication).

// Raw-access errors are segment's: segment.ErrBeforeStart, ErrBeyondEnd,
// ErrNotEmpty and *segment.OffsetMismatchError.

// ReadRaw returns the log's bytes from offset: the first n bytes of v, which
// is a zero-copy view (call v.Release when done). They are whole units of
// one segment — message and blank records, an EOF record (the zero tail
// after it is implied: it is zero on both sides), or a segment tail too
// short for a record — published before the call, adding units while they
// fit in max bytes; the first unit is returned even if it is larger, so a
// caller always makes progress. offset must be a record boundary (0, a
// segment base or the end of earlier raw bytes). At the write position n is
// 0. segment.ErrBeforeStart and ErrBeyondEnd are wrapped for offsets outside the log.
func (l *Log) ReadRaw(offset int64, max int) (v segment.View, n int, err error) {
	v, n, err = l.seg.ReadUnits(offset, max, MinRecordSize, func(b []byte) (int, bool, error) {
		rec, size, err := decode(b, false)
		return size, err == nil && rec.Attr == AttrEOF, err
	})
	if err != nil {
		return v, n, fmt.Errorf("message log %s: %w", l.cfg.Dir, err)
	}
	return v, n, nil
}

// seqUpdate is a sequence seen in raw bytes; subject aliases those bytes.
type seqUpdate struct {
	subject []byte
	seq     int64
}

// AppendRaw appends bytes copied from a master's log, which must start at
// the log's end (else *segment.OffsetMismatchError) and lie in the segment holding
// that end (or, at a segment boundary, the next one): the segments of both
// logs start at the same offsets because their segment sizes are equal. It
// validates every record (CRC included) and appends the longest prefix of b
// made of whole units; a unit cut short at the end of b is left for the next
// call. An EOF record ends the segment: its zero tail is written and the
// rest of b ignored. Each subject's next sequence is raised past the copied
// records, so the log continues the master's sequences if it is ever
// appended to. It returns the new end; bytes that are not valid records are
// an error and nothing is appended.
func (l *Log) AppendRaw(offset int64, b []byte) (end int64, err error) {
	begin := time.Now()
	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	if err := l.failure(); err != nil {
		l.appendMu.Unlock()
		return 0, err
	}
	wrote := l.seg.WrotePosition()
	if offset != wrote {
		l.appendMu.Unlock()
		return wrote, &segment.OffsetMismatchError{Log: "message log", Dir: l.cfg.Dir, Offset: offset, End: wrote}
	}
	segEnd := l.seg.SegmentEnd(wrote)
	if segEnd < 0 { // at a segment boundary: the next segment starts here
		segEnd = wrote + l.cfg.SegmentSize
	}
	var small [64]seqUpdate
	seqs := small[:0]
	p, fill := 0, 0 // fill: bytes to reserve (up to the segment end after an EOF record)
	for p < len(b) {
		left := segEnd - wrote - int64(p)
		if left < MinRecordSize {
			if int64(len(b)-p) < left {
				break
			}
			for _, c := range b[p : p+int(left)] {
				if c != 0 {
					l.appendMu.Unlock()
					return wrote, fmt.Errorf("message log %s: replicated bytes at %d should be the zero tail of the segment ending at %d: "+
						"the master's segments differ from ours (messagelog.segment.size %d) or the bytes are damaged", l.cfg.Dir, wrote+int64(p), segEnd, l.cfg.SegmentSize)
				}
			}
			p += int(left)
			fill = p
			break
		}
		rec, n, err := decode(b[p:min(int64(len(b)), int64(p)+left)], true)
		if errors.Is(err, ErrShort) && int64(len(b)-p) >= left {
			l.appendMu.Unlock()
			return wrote, fmt.Errorf("message log %s: replicated record at offset %d crosses this log's segment end %d: "+
				"the master's segments differ from ours (messagelog.segment.size %d)", l.cfg.Dir, wrote+int64(p), segEnd, l.cfg.SegmentSize)
		}
		if errors.Is(err, ErrShort) {
			break
		}
		if err != nil {
			l.appendMu.Unlock()
			return wrote, fmt.Errorf("message log %s: replicated bytes at offset %d are not a valid record: %w", l.cfg.Dir, wrote+int64(p), err)
		}
		if rec.Attr == AttrEOF {
			p += MinRecordSize
			fill = int(segEnd - wrote)
			break
		}
		if rec.Attr == AttrMessage {
			seqs = append(seqs, seqUpdate{rec.Subject, rec.Sequence})
		}
		p += n
		fill = p
	}
	if fill == 0 {
		l.appendMu.Unlock()
		return wrote, nil
	}
	data := b[:p]
	if _, err := l.seg.Append(fill, func(dst []byte) { clear(dst[copy(dst, data):]) }); err != nil {
		l.appendMu.Unlock()
		return wrote, fmt.Errorf("message log raw append: %w", err)
	}
	for _, u := range seqs {
		if q := l.nextSeq[string(u.subject)]; q != nil {
			*q = max(*q, u.seq+1)
		} else {
			next := u.seq + 1
			l.nextSeq[string(u.subject)] = &next
		}
	}
	end = wrote + int64(fill)
	l.appendMu.Unlock()
	if ch := l.notify.Swap(nil); ch != nil {
		close(*ch)
	}
	if l.cfg.FlushSync {
		if err := l.waitFlushed(context.Background(), end); err != nil {
			return end, err
		}
	}
	l.metrics.appendSeconds.Observe(time.Since(begin).Seconds())
	return end, nil
}

// SetStart makes an empty log (no segments) begin at offset: a replica's
// copy starts at its master's oldest retained segment. The dispatcher of a
// store follows (it skips to MinOffset).
func (l *Log) SetStart(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.seg.SegmentCount() > 0 {
		return fmt.Errorf("message log %s: cannot start at %d: %w (it spans [%d, %d))", l.cfg.Dir, offset, segment.ErrNotEmpty,
			l.seg.MinOffset(), l.seg.WrotePosition())
	}
	return l.seg.SetStart(offset)
}

// Empty reports whether the log has no segment files.
func (l *Log) Empty() bool { return l.seg.SegmentCount() == 0 }

// SegmentSize is the size of new segments (messagelog.segment.size).
func (l *Log) SegmentSize() int64 { return l.cfg.SegmentSize }

// ReplicableStart is the oldest offset a replica can copy from: the base of
// the oldest segment from which on every segment has the configured size
// (segments written under an older messagelog.segment.size cannot be
// reproduced by a replica, whose segments all get the configured size). It
// is the start of an empty log, and -1 if even the last segment has another
// size (replication can start once the log has rolled to a new segment).
func (l *Log) ReplicableStart() int64 {
	return replicableStart(l.seg.Segments(), l.cfg.SegmentSize, l.seg.MinOffset())
}

func replicableStart(segs []segment.SegmentInfo, size, empty int64) int64 {
	i := len(segs) - 1
	if i < 0 {
		return empty
	}
	if segs[i].Size != size {
		return -1
	}
	for i > 0 && segs[i-1].Size == size {
		i--
	}
	return segs[i].BaseOffset
}

// SequenceSnapshot returns the write position and every subject's highest
// assigned sequence, consistently (no append in between).
func (l *Log) SequenceSnapshot() (offset int64, maxSequences map[string]int64) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	out := make(map[string]int64, len(l.nextSeq))
	for s, p := range l.nextSeq {
		out[s] = *p - 1
	}
	return l.seg.WrotePosition(), out
}

// RaiseSequences makes each subject's next sequence at least its given max
// sequence + 1 (a replica learns its master's sequences of subjects whose
// messages it has not copied, e.g. all deleted by retention). The floors are
// remembered for RaisedSequences.
func (l *Log) RaiseSequences(maxSequences map[string]int64) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	for s, seq := range maxSequences {
		if seq < 0 {
			continue
		}
		if l.raised == nil {
			l.raised = map[string]int64{}
		}
		if cur, ok := l.raised[s]; !ok || seq > cur {
			l.raised[s] = seq
			if l.raisedNew == nil {
				l.raisedNew = map[string]int64{}
			}
			l.raisedNew[s] = seq
		}
		if q := l.nextSeq[s]; q != nil {
			*q = max(*q, seq+1)
		} else {
			next := seq + 1
			l.nextSeq[s] = &next
		}
	}
}

// TakeRaisedChanges returns the floors raised since its previous call
// (nil if none) and starts over: a store that keeps its own copy of
// RaisedSequences merges these instead of copying every floor, which holds
// appendMu, and so every producer, for as long as the copy takes.
func (l *Log) TakeRaisedChanges() map[string]int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	out := l.raisedNew
	l.raisedNew = nil
	return out
}

// RaisedSequences returns the floors RaiseSequences set, including those of
// the checkpoint Open started from (nil if none): a store keeps them in its
// message checkpoints, so a subject's sequence survives restarts even when
// the log holds no message of it (a replica learns such subjects from its
// master; retention may delete every message of a subject).
func (l *Log) RaisedSequences() map[string]int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if len(l.raised) == 0 {
		return nil
	}
	out := make(map[string]int64, len(l.raised))
	for s, seq := range l.raised {
		out[s] = seq
	}
	return out
}

// TimestampAt returns the timestamp of the first message record at or after
// offset (a record boundary), skipping fillers and blanks; ok is false if
// there is none below the write position.
func (l *Log) TimestampAt(offset int64) (ts int64, ok bool) {
	for range 8 {
		wrote := l.seg.WrotePosition()
		if offset >= wrote || offset < l.seg.MinOffset() {
			return 0, false
		}
		segEnd := l.seg.SegmentEnd(offset)
		if segEnd < 0 {
			return 0, false
		}
		if segEnd-offset < MinRecordSize {
			offset = segEnd
			continue
		}
		v, err := l.seg.Read(offset, int(min(segEnd, wrote)-offset))
		if err != nil {
			return 0, false
		}
		rec, n, err := decode(v.Bytes(), false)
		v.Release()
		switch {
		case err != nil:
			return 0, false
		case rec.Attr == AttrMessage:
			return rec.Timestamp, true
		case rec.Attr == AttrEOF:
			offset = segEnd
		default:
			offset += int64(n)
		}
	}
	return 0, false
}
