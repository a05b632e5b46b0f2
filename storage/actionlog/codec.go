package actionlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record layout (big-endian):
//
//	magic u32 (0xC3B2A100) | recordType u8 | actionType u8 | payloadSize i32 | payload | crc32 u32
//
// recordType 1 (EOF filler) and 2 (blank) carry only part of that header; see
// RecordType. The CRC-32 (IEEE) of the payload is our addition: QMQ ends a
// record with its payload, so a torn tail can only be caught by the payload
// failing to parse. Files are therefore not byte-compatible with QMQ's.
const (
	Magic = 0xC3B2A100

	// HeaderSize is magic, record type, action type and payload size.
	HeaderSize = 4 + 1 + 1 + 4
	// TrailerSize is the CRC after the payload.
	TrailerSize = 4
	// MinFillerSize is the shortest EOF filler that carries its magic and
	// record type; a shorter segment tail is left as zeros and readers
	// skip it without looking.
	MinFillerSize = 4 + 1
	// blankHeaderSize is magic, record type and the i32 length that follows.
	blankHeaderSize = 4 + 1 + 4

	// Fixed payload bytes besides the three strings (each with its i16 length).
	pullFixed     = 3*2 + 8 + 1 + 4*8
	rangeAckFixed = 3*2 + 8 + 2*8
	offlineFixed  = 3*2 + 8
	resetFixed    = 3*2 + 8 + 1 + 8

	// MaxPayloadSize bounds the payloadSize field: three maximal strings in a
	// PULL payload. Anything larger is corruption.
	MaxPayloadSize = pullFixed + 3*MaxStringLen
	// MaxRecordSize is the largest action record.
	MaxRecordSize = HeaderSize + MaxPayloadSize + TrailerSize
)

// RecordType is the second field of every record (QMQ's attribute byte).
type RecordType uint8

const (
	// RecordAction is an action record.
	RecordAction RecordType = 0
	// RecordEOF is the filler at the end of a segment: magic, the record
	// type, then zeros up to the segment end.
	RecordEOF RecordType = 1
	// RecordBlank is QMQ's blank record (magic, the record type, an i32 count
	// of blank bytes following the 9-byte header), which a slave writes
	// before its first copied byte. We never write it; readers skip it.
	RecordBlank RecordType = 2
)

var (
	// ErrTruncated means b ends inside the record: a torn tail, or a read at
	// the published end of the log.
	ErrTruncated = errors.New("action record truncated")
	// ErrCorrupt means the bytes are not a valid record (bad magic, unknown
	// type, impossible size, CRC mismatch or a malformed payload). Zeroed
	// bytes report ErrCorrupt too.
	ErrCorrupt = errors.New("action record corrupt")
)

var crcTable = crc32.IEEETable

// EncodedSize is the number of bytes a's record takes.
func EncodedSize(a Action) (int, error) {
	if err := a.validate(); err != nil {
		return 0, err
	}
	return encodedSize(&a), nil
}

func encodedSize(a *Action) int {
	return HeaderSize + payloadSize(a) + TrailerSize
}

func payloadSize(a *Action) int {
	strs := len(a.Subject) + len(a.Group) + len(a.ConsumerID)
	switch a.Type {
	case Pull:
		return pullFixed + strs
	case RangeAck:
		return rangeAckFixed + strs
	case Reset:
		return resetFixed + strs
	default:
		return offlineFixed + strs
	}
}

// AppendEncoded appends a's record to dst.
func AppendEncoded(dst []byte, a Action) ([]byte, error) {
	if err := a.validate(); err != nil {
		return dst, err
	}
	n := encodedSize(&a)
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	encodeInto(dst[start:], &a)
	return dst, nil
}

// encodeInto writes a (already validated) into b[:encodedSize(a)] and returns
// that size. It writes straight into the mapped segment, so it never allocates.
func encodeInto(b []byte, a *Action) int {
	ps := payloadSize(a)
	binary.BigEndian.PutUint32(b[0:], Magic)
	b[4] = byte(RecordAction)
	b[5] = byte(a.Type)
	binary.BigEndian.PutUint32(b[6:], uint32(ps))
	p := b[HeaderSize : HeaderSize+ps]
	i := putStr16(p, 0, a.Subject)
	i = putStr16(p, i, a.Group)
	i = putStr16(p, i, a.ConsumerID)
	binary.BigEndian.PutUint64(p[i:], uint64(a.Timestamp))
	i += 8
	switch a.Type {
	case Pull, Reset:
		if a.Broadcast {
			p[i] = 1
		} else {
			p[i] = 0
		}
		i++
		if a.Type == Reset {
			binary.BigEndian.PutUint64(p[i:], uint64(a.LastMsgSeq))
			break
		}
		for _, v := range [...]int64{a.FirstPullSeq, a.LastPullSeq, a.FirstMsgSeq, a.LastMsgSeq} {
			binary.BigEndian.PutUint64(p[i:], uint64(v))
			i += 8
		}
	case RangeAck:
		binary.BigEndian.PutUint64(p[i:], uint64(a.FirstPullSeq))
		binary.BigEndian.PutUint64(p[i+8:], uint64(a.LastPullSeq))
	}
	binary.BigEndian.PutUint32(b[HeaderSize+ps:], crc32.Checksum(p, crcTable))
	return HeaderSize + ps + TrailerSize
}

func putStr16(p []byte, i int, s string) int {
	binary.BigEndian.PutUint16(p[i:], uint16(len(s)))
	return i + 2 + copy(p[i+2:], s)
}

// DecodeAction decodes the record at the start of b, which must not extend
// past the end of the segment holding it (the EOF filler claims the rest).
// It returns the record type and the bytes the record occupies: for an action
// record its encoded size, for a blank record its declared size, for an EOF
// filler len(b). a is set only for an action record; its strings are copies,
// so b may be released afterwards. Errors wrap ErrTruncated or ErrCorrupt.
func DecodeAction(b []byte) (a Action, rt RecordType, n int, err error) {
	if len(b) < MinFillerSize {
		return Action{}, 0, 0, fmt.Errorf("%w: %d bytes left", ErrTruncated, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != Magic {
		return Action{}, 0, 0, fmt.Errorf("%w: magic %#08x", ErrCorrupt, m)
	}
	rt = RecordType(b[4])
	switch rt {
	case RecordEOF:
		return Action{}, rt, len(b), nil
	case RecordBlank:
		if len(b) < blankHeaderSize {
			return Action{}, 0, 0, fmt.Errorf("%w: blank header", ErrTruncated)
		}
		size := int64(int32(binary.BigEndian.Uint32(b[5:])))
		if size < 0 {
			return Action{}, 0, 0, fmt.Errorf("%w: blank size %d", ErrCorrupt, size)
		}
		if size > int64(len(b)-blankHeaderSize) {
			return Action{}, 0, 0, fmt.Errorf("%w: blank of %d bytes, %d left", ErrTruncated, size, len(b)-blankHeaderSize)
		}
		return Action{}, rt, blankHeaderSize + int(size), nil
	case RecordAction:
	default:
		return Action{}, 0, 0, fmt.Errorf("%w: record type %d", ErrCorrupt, b[4])
	}
	if len(b) < HeaderSize {
		return Action{}, 0, 0, fmt.Errorf("%w: header", ErrTruncated)
	}
	t := Type(b[5])
	if t > Reset {
		return Action{}, 0, 0, fmt.Errorf("%w: action type %d", ErrCorrupt, b[5])
	}
	ps := int64(int32(binary.BigEndian.Uint32(b[6:])))
	if ps < offlineFixed || ps > MaxPayloadSize {
		return Action{}, 0, 0, fmt.Errorf("%w: payload size %d", ErrCorrupt, ps)
	}
	n = HeaderSize + int(ps) + TrailerSize
	if n > len(b) {
		return Action{}, 0, 0, fmt.Errorf("%w: record of %d bytes, %d left", ErrTruncated, n, len(b))
	}
	p := b[HeaderSize : HeaderSize+int(ps)]
	if want, got := binary.BigEndian.Uint32(b[HeaderSize+int(ps):]), crc32.Checksum(p, crcTable); want != got {
		return Action{}, 0, 0, fmt.Errorf("%w: crc %#08x, computed %#08x", ErrCorrupt, want, got)
	}
	a, err = decodePayload(t, p)
	if err != nil {
		return Action{}, 0, 0, err
	}
	return a, rt, n, nil
}

// decodePayload parses p, which must be exactly one payload of type t.
func decodePayload(t Type, p []byte) (Action, error) {
	a := Action{Type: t}
	d := decoder{b: p}
	a.Subject = d.str16()
	a.Group = d.str16()
	a.ConsumerID = d.str16()
	a.Timestamp = d.i64()
	switch t {
	case Pull, Reset:
		switch d.u8() {
		case 0:
		case 1:
			a.Broadcast = true
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: broadcast flag not 0 or 1", ErrCorrupt)
			}
		}
		if t == Reset {
			a.LastMsgSeq = d.i64()
			break
		}
		a.FirstPullSeq = d.i64()
		a.LastPullSeq = d.i64()
		a.FirstMsgSeq = d.i64()
		a.LastMsgSeq = d.i64()
	case RangeAck:
		a.FirstPullSeq = d.i64()
		a.LastPullSeq = d.i64()
	}
	if d.err != nil {
		return Action{}, fmt.Errorf("%s payload: %w", t, d.err)
	}
	if d.i != len(p) {
		return Action{}, fmt.Errorf("%w: %s payload has %d trailing bytes", ErrCorrupt, t, len(p)-d.i)
	}
	return a, nil
}

// decoder reads big-endian fields; the first short read sticks in err and
// turns every later read into a zero.
type decoder struct {
	b   []byte
	i   int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.b)-d.i < n {
		d.err = fmt.Errorf("%w: field runs past the payload", ErrCorrupt)
		return false
	}
	return true
}

func (d *decoder) u8() byte {
	if !d.need(1) {
		return 0
	}
	d.i++
	return d.b[d.i-1]
}

func (d *decoder) i64() int64 {
	if !d.need(8) {
		return 0
	}
	d.i += 8
	return int64(binary.BigEndian.Uint64(d.b[d.i-8:]))
}

func (d *decoder) str16() string {
	if !d.need(2) {
		return ""
	}
	n := int(int16(binary.BigEndian.Uint16(d.b[d.i:])))
	d.i += 2
	if n < 0 {
		d.err = fmt.Errorf("%w: negative string length %d", ErrCorrupt, n)
		return ""
	}
	if !d.need(n) {
		return ""
	}
	d.i += n
	return string(d.b[d.i-n : d.i])
}
