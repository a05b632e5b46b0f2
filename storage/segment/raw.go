package segment

import (
	"errors"
	"fmt"
)

// Raw access for master/slave replication, shared by the message log and
// the action log: a master reads whole records as bytes and a slave appends
// exactly those bytes at the same offsets (services/replication).

var (
	// ErrBeforeStart is wrapped by ReadUnits for an offset older than the
	// oldest retained segment.
	ErrBeforeStart = errors.New("offset is before the oldest retained segment")
	// ErrBeyondEnd is wrapped by ReadUnits for an offset past the write position.
	ErrBeyondEnd = errors.New("offset is beyond the end of the log")
	// ErrNotEmpty is wrapped by a log's SetStart when it already has segments.
	ErrNotEmpty = errors.New("log is not empty")
)

// OffsetMismatchError is returned by a log's AppendRaw for bytes that do not
// start at the log's end.
type OffsetMismatchError struct {
	Log    string // "message log", "action log"
	Dir    string
	Offset int64 // where the bytes belong
	End    int64 // where the log ends
}

func (e *OffsetMismatchError) Error() string {
	return fmt.Sprintf("%s %s: replicated bytes start at offset %d but the log ends at %d (raw bytes are only appended at the end)",
		e.Log, e.Dir, e.Offset, e.End)
}

// UnitFunc measures the unit (record) at the start of b, which holds at
// least minUnit bytes: its size, and whether it is the filler that ends its
// segment (whose zero tail is implied). It reads headers only.
type UnitFunc func(b []byte) (size int, filler bool, err error)

// ReadUnits returns the log's bytes from offset: the first n bytes of v, a
// zero-copy view (call v.Release when done). They are whole units of one
// segment published before the call — records, a filler (its zero tail is
// implied: it is zero on both sides), or a segment tail shorter than
// minUnit — adding units while they fit in max bytes; the first unit is
// returned even if larger, so a caller always makes progress. offset must be
// a unit boundary. At the write position n is 0. ErrBeforeStart and
// ErrBeyondEnd are wrapped for offsets outside the log. A unit that unit
// cannot measure ends the bytes served; if it is the first, its error is
// returned.
func (l *Log) ReadUnits(offset int64, max int, minUnit int64, unit UnitFunc) (v View, n int, err error) {
	wrote := l.WrotePosition()
	switch {
	case offset == wrote:
		return View{}, 0, nil
	case offset > wrote:
		return View{}, 0, fmt.Errorf("read at %d: %w (%d)", offset, ErrBeyondEnd, wrote)
	case offset < l.MinOffset():
		return View{}, 0, fmt.Errorf("read at %d: %w (%d)", offset, ErrBeforeStart, l.MinOffset())
	}
	segEnd := l.SegmentEnd(offset)
	if segEnd < 0 {
		return View{}, 0, fmt.Errorf("read at %d: %w (%d)", offset, ErrBeforeStart, l.MinOffset())
	}
	v, err = l.Read(offset, int(min(segEnd, wrote)-offset))
	if err != nil {
		return View{}, 0, fmt.Errorf("read at %d: %w", offset, err)
	}
	b := v.Bytes()
	for n < len(b) {
		if segEnd-offset-int64(n) < minUnit { // a zero tail
			n = len(b)
			break
		}
		size, filler, err := unit(b[n:])
		if err != nil {
			if n > 0 {
				break // serve what is valid; the next read reports the error
			}
			v.Release()
			return View{}, 0, fmt.Errorf("invalid record at %d: %w", offset, err)
		}
		if filler {
			n += int(minUnit)
			break
		}
		if n > 0 && n+size > max {
			break
		}
		n += size
	}
	return v, n, nil
}
