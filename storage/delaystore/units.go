package delaystore

import (
	"errors"
	"fmt"

	"github.com/qmq-go/qmq/storage/segment"
)

// unitFunc measures the record at the start of b (at log offset off): its
// size, and whether it is the filler that ends its segment.
type unitFunc func(b []byte, off int64) (n int, filler bool, err error)

// messageUnit validates a message-log record including its CRC and that its
// sequence is its offset.
func messageUnit(b []byte, off int64) (int, bool, error) {
	rec, err := decodeRecord(b, true)
	if err != nil {
		return 0, false, err
	}
	if rec.attr == attrEOF {
		return recHeaderSize, true, nil
	}
	if rec.seq != off {
		return 0, false, errBadHeader
	}
	return rec.size, false, nil
}

// bucketUnit validates a schedule-bucket record including its CRC.
func bucketUnit(b []byte, _ int64) (int, bool, error) {
	rec, err := decodeRecord(b, true)
	if err != nil {
		return 0, false, err
	}
	return rec.size, rec.attr == attrEOF, nil
}

func dispatchUnit(b []byte, _ int64) (int, bool, error) {
	if _, err := decodeDisp(b); err != nil {
		return 0, false, err
	}
	return dispRecordSize, false, nil
}

// scan visits the valid records of seg in [from, to) (from a record
// boundary; to < 0: the write position) and returns the end of the valid
// prefix: the first invalid record, or to. visit (may be nil) sees each
// non-filler record; an error from it stops the scan.
func scan(seg *segment.Log, from, to int64, minUnit int, unit unitFunc, visit func(off int64, b []byte) error) (int64, error) {
	if wrote := seg.WrotePosition(); to < 0 || to > wrote {
		to = wrote
	}
	pos := from
	for _, s := range seg.Segments() {
		segEnd := s.BaseOffset + s.Size
		if segEnd <= pos {
			continue
		}
		pos = max(pos, s.BaseOffset)
		if pos >= to {
			break
		}
		limit := min(segEnd, to)
		v, err := seg.Read(pos, int(limit-pos))
		if err != nil {
			return pos, fmt.Errorf("scan %s at %d: %w", s.Path, pos, err)
		}
		b := v.Bytes()
		p := 0
		for p < len(b) {
			off := pos + int64(p)
			if segEnd-off < int64(minUnit) {
				break // the zero tail of a full segment: pos moves past all of b
			}
			n, filler, err := unit(b[p:], off)
			if err != nil {
				v.Release()
				return off, nil
			}
			if filler {
				break // the rest of the segment is filler
			}
			if visit != nil {
				if err := visit(off, b[p:p+n]); err != nil {
					v.Release()
					return off, err
				}
			}
			p += n
		}
		v.Release()
		pos += int64(len(b))
		if pos >= to {
			break
		}
	}
	return pos, nil
}

// recoverLog truncates seg at the end of its valid records scanned from
// from, durably, and returns that end.
// With align, scanning starts at the base of the segment holding from, so
// that a from that is not a record boundary never cuts valid records; a
// from taken from a checksummed checkpoint is trusted as is.
func recoverLog(seg *segment.Log, name string, from int64, align bool, minUnit int, unit unitFunc, visit func(off int64, b []byte) error) (int64, error) {
	if seg.SegmentCount() == 0 {
		return seg.WrotePosition(), nil
	}
	segs := seg.Segments()
	from = max(from, segs[0].BaseOffset)
	for i := len(segs) - 1; align && i >= 0; i-- {
		if segs[i].BaseOffset <= from {
			from = segs[i].BaseOffset
			break
		}
	}
	end, err := scan(seg, from, -1, minUnit, unit, visit)
	if err != nil {
		return 0, fmt.Errorf("recover %s: %w", name, err)
	}
	if err := seg.Truncate(end); err != nil {
		return 0, fmt.Errorf("recover %s: truncate at %d: %w", name, end, err)
	}
	// A killed predecessor may have left records only in the page cache: make
	// them durable before anything is appended behind them.
	if err := seg.Flush(); err != nil {
		return 0, fmt.Errorf("recover %s: %w", name, err)
	}
	return end, nil
}

// appendRaw appends bytes replicated from a master's log at offset, which
// must be seg's end, validating every record: the longest prefix of whole
// records of one segment is appended (an EOF filler ends the segment; its
// zero tail is written). It returns the new end and the bytes of b taken.
func appendRaw(seg *segment.Log, name string, segSize int64, minUnit int, unit unitFunc, offset int64, b []byte) (end int64, taken int, err error) {
	wrote := seg.WrotePosition()
	if offset != wrote {
		return wrote, 0, &segment.OffsetMismatchError{Log: name, Dir: "", Offset: offset, End: wrote}
	}
	segEnd := seg.SegmentEnd(wrote)
	if segEnd < 0 {
		segEnd = wrote + segSize
	}
	p, fill := 0, 0
	for p < len(b) {
		left := segEnd - wrote - int64(p)
		if left < int64(minUnit) { // a zero tail
			if int64(len(b)-p) < left {
				break
			}
			for _, c := range b[p : p+int(left)] {
				if c != 0 {
					return wrote, 0, fmt.Errorf("%s: replicated bytes at %d should be the zero tail of the segment ending at %d (segment sizes differ?)", name, wrote+int64(p), segEnd)
				}
			}
			p += int(left)
			fill = p
			break
		}
		chunk := b[p:min(int64(len(b)), int64(p)+left)]
		n, filler, err := unit(chunk, wrote+int64(p))
		if errors.Is(err, errShort) {
			if int64(len(b)-p) >= left {
				return wrote, 0, fmt.Errorf("%s: replicated record at %d crosses the segment end %d (segment sizes differ?)", name, wrote+int64(p), segEnd)
			}
			break // the rest comes with the next call
		}
		if err != nil {
			return wrote, 0, fmt.Errorf("%s: replicated bytes at %d are not a valid record: %w", name, wrote+int64(p), err)
		}
		if filler {
			p += n
			fill = int(segEnd - wrote)
			break
		}
		p += n
		fill = p
	}
	if fill == 0 {
		return wrote, 0, nil
	}
	data := b[:p]
	if _, err := seg.Append(fill, func(dst []byte) { clear(dst[copy(dst, data):]) }); err != nil {
		return wrote, 0, fmt.Errorf("%s: raw append at %d: %w", name, wrote, err)
	}
	return wrote + int64(fill), p, nil
}

// errStopScan ends a scan early from its visit function.
var errStopScan = errors.New("stop scan")
