package consumerlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// UnitSize is the width of one consumer log unit (QMQ's v1 unit):
//
//	timestamp i64 | wroteOffset i64 | wroteBytes i32 | headerSize i16
//
// big-endian. Sequence N lives at log offset N*UnitSize.
const UnitSize = 22

// Entry locates one message in the message log.
type Entry struct {
	Timestamp  int64 // milliseconds since the epoch, when the message was appended
	Offset     int64 // message log offset of the record
	Size       int32 // record size in bytes
	HeaderSize int16 // record header size in bytes
}

// There are three kinds of unit on disk:
//
//   - an entry: Size > 0 and Offset >= 0;
//   - a blank (ours): all 22 bytes 0xFF, written for sequences that are
//     skipped when a Put jumps ahead. It must differ from zero because
//     segments are preallocated with zeros and end recovery looks for the
//     last non-zero unit (a zero blank would make a gap look like the end);
//   - zero: never written (preallocated space, or lost in a crash).
//
// QMQ's own blank (offset 0, wroteBytes MaxInt32, headerSize 0, timestamp
// now) is read as a blank too, so a QMQ consumer log stays readable.
// Get reports blanks and zero units as "not found".

// errInvalidEntry rejects entries that would be read back as blank or zero.
var errInvalidEntry = errors.New("invalid consumer log entry")

// A positive header size is also what lets recovery recognise a unit torn
// by a crash: the header size is the unit's last field, so a unit cut short
// anywhere before its last byte reads back with HeaderSize 0.
func validateEntry(e Entry) error {
	if !isValidEntry(e) {
		return fmt.Errorf("%w: %+v (need 0 < HeaderSize <= Size < MaxInt32, Offset >= 0)", errInvalidEntry, e)
	}
	return nil
}

func encodeUnit(b []byte, e Entry) {
	_ = b[UnitSize-1]
	binary.BigEndian.PutUint64(b[0:8], uint64(e.Timestamp))
	binary.BigEndian.PutUint64(b[8:16], uint64(e.Offset))
	binary.BigEndian.PutUint32(b[16:20], uint32(e.Size))
	binary.BigEndian.PutUint16(b[20:22], uint16(e.HeaderSize))
}

func decodeUnit(b []byte) Entry {
	_ = b[UnitSize-1]
	return Entry{
		Timestamp:  int64(binary.BigEndian.Uint64(b[0:8])),
		Offset:     int64(binary.BigEndian.Uint64(b[8:16])),
		Size:       int32(binary.BigEndian.Uint32(b[16:20])),
		HeaderSize: int16(binary.BigEndian.Uint16(b[20:22])),
	}
}

// isEntry reports whether a decoded unit is a real entry (not a blank, ours
// or QMQ's, and not zero).
func isEntry(e Entry) bool {
	return e.Size > 0 && e.Size != math.MaxInt32 && e.Offset >= 0
}

// isValidEntry reports whether e is an entry Put accepts. Get serves only
// such units, so a unit a crash cut short is reported as missing rather
// than served.
func isValidEntry(e Entry) bool {
	return isEntry(e) && e.HeaderSize > 0 && int32(e.HeaderSize) <= e.Size
}

// fillBlank writes blank units over b (also used as the segment filler, so
// any tail a segment roll would leave is blank rather than zero).
func fillBlank(b []byte) {
	for i := range b {
		b[i] = 0xFF
	}
}

func isBlank(b []byte) bool {
	for _, c := range b[:UnitSize] {
		if c != 0xFF {
			return false
		}
	}
	return true
}

func isZero(b []byte) bool {
	for _, c := range b[:UnitSize] {
		if c != 0 {
			return false
		}
	}
	return true
}

// plausible reports whether a unit found at the end of a log after a crash
// can be what a Put wrote: a full blank, QMQ's blank, or a valid entry. A
// unit of which a crash kept only a prefix fails it (its HeaderSize, or at
// least the low byte that a header below 256 bytes lives in, is zero).
// Damage that is not a clean prefix (sectors written back out of order)
// can escape it, which is why the owner truncates every subject to its
// checkpoint and replays (see TruncateAfter).
func plausible(b []byte) bool {
	if isBlank(b) {
		return true
	}
	e := decodeUnit(b)
	if e.Offset == 0 && e.Size == math.MaxInt32 && e.HeaderSize == 0 {
		return true // QMQ's blank
	}
	return isValidEntry(e)
}
