package actionlog

import (
	"encoding/binary"
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

// ReadRaw returns the log's bytes from offset: the first n bytes of v, a
// zero-copy view (call v.Release when done). They are whole units of one
// segment — action and blank records, an EOF filler (the zero tail after it
// is implied), or a segment tail too short for a filler — published before
// the call, adding units while they fit in max bytes; the first unit is
// returned even if larger. offset must be a record boundary. At the write
// position n is 0. segment.ErrBeforeStart and ErrBeyondEnd are wrapped for offsets
// outside the log. Record CRCs are not checked here (the replica does).
func (l *Log) ReadRaw(offset int64, max int) (v segment.View, n int, err error) {
	v, n, err = l.seg.ReadUnits(offset, max, MinFillerSize, func(b []byte) (int, bool, error) {
		rt, size, err := unitSize(b)
		return size, err == nil && rt == RecordEOF, err
	})
	if err != nil {
		return v, n, fmt.Errorf("action log %s: %w", l.cfg.Dir, err)
	}
	return v, n, nil
}

// unitSize reads only the header of the record at the start of b and
// returns its type and size (MinFillerSize for an EOF filler).
func unitSize(b []byte) (RecordType, int, error) {
	if len(b) < MinFillerSize {
		return 0, 0, fmt.Errorf("%w: %d bytes left", ErrTruncated, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != Magic {
		return 0, 0, fmt.Errorf("%w: magic %#08x", ErrCorrupt, m)
	}
	var size int64
	switch rt := RecordType(b[4]); rt {
	case RecordEOF:
		return rt, MinFillerSize, nil
	case RecordBlank:
		if len(b) < blankHeaderSize {
			return 0, 0, fmt.Errorf("%w: blank header", ErrTruncated)
		}
		size = blankHeaderSize + int64(int32(binary.BigEndian.Uint32(b[5:])))
		if size < blankHeaderSize {
			return 0, 0, fmt.Errorf("%w: blank size %d", ErrCorrupt, size-blankHeaderSize)
		}
	case RecordAction:
		if len(b) < HeaderSize {
			return 0, 0, fmt.Errorf("%w: header", ErrTruncated)
		}
		ps := int64(int32(binary.BigEndian.Uint32(b[6:])))
		if ps < offlineFixed || ps > MaxPayloadSize {
			return 0, 0, fmt.Errorf("%w: payload size %d", ErrCorrupt, ps)
		}
		size = HeaderSize + ps + TrailerSize
	default:
		return 0, 0, fmt.Errorf("%w: record type %d", ErrCorrupt, b[4])
	}
	if size > int64(len(b)) {
		return 0, 0, fmt.Errorf("%w: record of %d bytes, %d left", ErrTruncated, size, len(b))
	}
	return RecordType(b[4]), int(size), nil
}

// AppendRaw appends bytes copied from a master's action log, which must
// start at the log's end (else *segment.OffsetMismatchError) and lie in the segment
// holding that end (or, at a segment boundary, the next one). It validates
// every record (CRC and payload) and appends the longest prefix of b made of
// whole units; a unit cut short at the end of b is left for the next call.
// An EOF filler ends the segment: its zero tail is written and the rest of
// b ignored. It returns the new end and the actions appended, in order (the
// owner applies them to its pull-log table); bytes that are not valid
// records are an error and nothing is appended.
func (l *Log) AppendRaw(offset int64, b []byte) (end int64, actions []Action, err error) {
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	wrote := l.seg.WrotePosition()
	if offset != wrote {
		return wrote, nil, &segment.OffsetMismatchError{Log: "action log", Dir: l.cfg.Dir, Offset: offset, End: wrote}
	}
	segEnd := l.seg.SegmentEnd(wrote)
	if segEnd < 0 { // at a segment boundary: the next segment starts here
		segEnd = wrote + l.cfg.SegmentSize
	}
	p, fill := 0, 0 // fill: bytes to reserve (up to the segment end after a filler)
	for p < len(b) {
		left := segEnd - wrote - int64(p)
		if left < MinFillerSize {
			if int64(len(b)-p) < left {
				break
			}
			for _, c := range b[p : p+int(left)] {
				if c != 0 {
					return wrote, nil, fmt.Errorf("action log %s: replicated bytes at %d should be the zero tail of the segment ending at %d: "+
						"the master's segments differ from ours (actionlog.segment.size %d) or the bytes are damaged", l.cfg.Dir, wrote+int64(p), segEnd, l.cfg.SegmentSize)
				}
			}
			p += int(left)
			fill = p
			break
		}
		a, rt, n, err := DecodeAction(b[p:min(int64(len(b)), int64(p)+left)])
		if errors.Is(err, ErrTruncated) {
			if int64(len(b)-p) >= left {
				return wrote, nil, fmt.Errorf("action log %s: replicated record at offset %d crosses this log's segment end %d: "+
					"the master's segments differ from ours (actionlog.segment.size %d)", l.cfg.Dir, wrote+int64(p), segEnd, l.cfg.SegmentSize)
			}
			break
		}
		if err != nil {
			return wrote, nil, fmt.Errorf("action log %s: replicated bytes at offset %d are not a valid record: %w", l.cfg.Dir, wrote+int64(p), err)
		}
		if rt == RecordEOF {
			p += MinFillerSize
			fill = int(segEnd - wrote)
			break
		}
		if rt == RecordAction {
			actions = append(actions, a)
		}
		p += n
		fill = p
	}
	if fill == 0 {
		return wrote, nil, nil
	}
	if err := l.flushBeforeRoll(fill); err != nil {
		return wrote, nil, err
	}
	data := b[:p]
	if _, err := l.seg.Append(fill, func(dst []byte) { clear(dst[copy(dst, data):]) }); err != nil {
		return wrote, nil, fmt.Errorf("append to action log %s: %w", l.cfg.Dir, err)
	}
	l.metrics.appended(actions, fill)
	l.metrics.appendLatency(time.Since(start))
	l.notify()
	return wrote + int64(fill), actions, nil
}

// SetStart makes an empty log (no segments) begin at offset: a replica's
// copy starts at its master's oldest retained segment.
func (l *Log) SetStart(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seg.SegmentCount() > 0 {
		return fmt.Errorf("action log %s: cannot start at %d: %w (it spans [%d, %d))", l.cfg.Dir, offset, segment.ErrNotEmpty,
			l.seg.MinOffset(), l.seg.WrotePosition())
	}
	return l.seg.SetStart(offset)
}

// Empty reports whether the log has no segment files.
func (l *Log) Empty() bool { return l.seg.SegmentCount() == 0 }

// SegmentSize is the size of new segments (actionlog.segment.size).
func (l *Log) SegmentSize() int64 { return l.cfg.SegmentSize }

// ReplicableStart is the oldest offset a replica can copy from: the base of
// the oldest segment from which on every segment has the configured size
// (a replica's segments all get the configured size). It is the start of an
// empty log, and -1 if even the last segment has another size.
func (l *Log) ReplicableStart() int64 {
	segs := l.seg.Segments()
	i := len(segs) - 1
	if i < 0 {
		return l.seg.MinOffset()
	}
	if segs[i].Size != l.cfg.SegmentSize {
		return -1
	}
	for i > 0 && segs[i-1].Size == l.cfg.SegmentSize {
		i--
	}
	return segs[i].BaseOffset
}
