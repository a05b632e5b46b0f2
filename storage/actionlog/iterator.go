package actionlog

import (
	"fmt"
)

// Iterator reads actions in log order. It is not safe for concurrent use;
// take one per reader.
type Iterator struct {
	l   *Log
	off int64
	err error
}

// Iterate returns an iterator positioned at from, which must be a record
// boundary: 0, a segment base, or an offset an earlier Next or Append
// returned (the action checkpoint's offset is one).
func (l *Log) Iterate(from int64) *Iterator {
	return &Iterator{l: l, off: from}
}

// Next returns the next action and the offset just after it. ok is false at
// the published end of the log, where a later Next continues once more has
// been appended (wait on Appended), or after an error (see Err). EOF fillers
// and blank records are skipped.
func (it *Iterator) Next() (a Action, next int64, ok bool) {
	seg := it.l.seg
	for it.err == nil {
		wrote := seg.WrotePosition()
		if it.off == wrote {
			return Action{}, it.off, false
		}
		if it.off > wrote || it.off < seg.MinOffset() {
			it.err = fmt.Errorf("action log %s: offset %d outside [%d, %d]", it.l.cfg.Dir, it.off, seg.MinOffset(), wrote)
			break
		}
		segEnd := seg.SegmentEnd(it.off)
		if segEnd < 0 {
			it.err = fmt.Errorf("action log %s: no segment holds offset %d", it.l.cfg.Dir, it.off)
			break
		}
		if segEnd-it.off < MinFillerSize {
			// Too short for any record: the writer rolled (wrote is already
			// past segEnd, since it is past it.off).
			it.off = segEnd
			continue
		}
		// A reservation is published whole, so every record starting below
		// wrote ends at or below it; the EOF filler is published up to segEnd.
		v, err := seg.Read(it.off, int(min(segEnd, wrote)-it.off))
		if err != nil {
			it.err = fmt.Errorf("action log %s at %d: %w", it.l.cfg.Dir, it.off, err)
			break
		}
		a, rt, n, err := DecodeAction(v.Bytes())
		v.Release()
		if err != nil {
			it.err = fmt.Errorf("action log %s at %d: %w", it.l.cfg.Dir, it.off, err)
			break
		}
		switch rt {
		case RecordEOF:
			it.off = segEnd
		case RecordBlank:
			it.off += int64(n)
		default:
			it.off += int64(n)
			return a, it.off, true
		}
	}
	return Action{}, it.off, false
}

// Offset is where the next Next reads.
func (it *Iterator) Offset() int64 { return it.off }

// Err is the error that stopped the iterator, if any.
func (it *Iterator) Err() error { return it.err }
