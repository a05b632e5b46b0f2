package messagelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"

	"github.com/qmq-go/qmq/storage/segment"
)

// Record format constants.
const (
	Magic uint32 = 0xA1B2C302

	AttrMessage uint8 = 0
	AttrEOF     uint8 = 1
	AttrBlank   uint8 = 2

	// MinRecordSize is the EOF record: magic, attr, timestamp. A segment tail
	// shorter than this holds no record.
	MinRecordSize = 13
	// fixedHeaderSize is a message header without its subject.
	fixedHeaderSize = 4 + 1 + 8 + 8 + 2 + 8 + 4
	blankHeaderSize = MinRecordSize + 4
	// MaxSubjectLen keeps the header size within the consumer log's i16.
	MaxSubjectLen = math.MaxInt16 - fixedHeaderSize
)

// Decoding errors. They are sentinels so that the read path never allocates.
var (
	ErrShort        = errors.New("messagelog: record truncated")
	ErrBadMagic     = errors.New("messagelog: bad magic")
	ErrBadAttr      = errors.New("messagelog: bad attribute")
	ErrBadHeader    = errors.New("messagelog: invalid header")
	ErrBadCRC       = errors.New("messagelog: payload CRC mismatch")
	ErrSizeMismatch = errors.New("messagelog: record size does not match")
)

// Record is a decoded record. Subject and Payload alias the log's mapping:
// they are valid until Release (records from Read) or the iterator's next
// call (records from an Iterator).
type Record struct {
	Attr       uint8
	Timestamp  int64
	Sequence   int64
	Subject    []byte
	PayloadCRC int64
	Payload    []byte
	Offset     int64
	Size       int32
	HeaderSize int16

	view segment.View
}

// Release unpins the record's segment (records from Read). It is a no-op for
// records from an Iterator or DecodeRecord.
func (r Record) Release() { r.view.Release() }

// CheckCRC recomputes the payload CRC (Read does not, to stay cheap).
func (r Record) CheckCRC() bool {
	return int64(crc32.ChecksumIEEE(r.Payload)) == r.PayloadCRC
}

// DecodeRecord validates the record at the start of b, including the payload
// CRC, and returns it with its size n. For an EOF record n is
// MinRecordSize (the rest of the segment is filler).
func DecodeRecord(b []byte) (rec Record, n int, err error) {
	return decode(b, true)
}

func decode(b []byte, checkCRC bool) (rec Record, n int, err error) {
	if len(b) < MinRecordSize {
		return Record{}, 0, ErrShort
	}
	if binary.BigEndian.Uint32(b) != Magic {
		return Record{}, 0, ErrBadMagic
	}
	rec.Attr = b[4]
	rec.Timestamp = int64(binary.BigEndian.Uint64(b[5:]))
	switch rec.Attr {
	case AttrEOF:
		rec.Size = MinRecordSize
		return rec, MinRecordSize, nil
	case AttrBlank:
		if len(b) < blankHeaderSize {
			return Record{}, 0, ErrShort
		}
		size := int32(binary.BigEndian.Uint32(b[13:]))
		if size < blankHeaderSize {
			return Record{}, 0, ErrBadHeader
		}
		if int64(size) > int64(len(b)) {
			return Record{}, 0, ErrShort
		}
		rec.Size = size
		return rec, int(size), nil
	case AttrMessage:
	default:
		return Record{}, 0, ErrBadAttr
	}
	if len(b) < fixedHeaderSize {
		return Record{}, 0, ErrShort
	}
	rec.Sequence = int64(binary.BigEndian.Uint64(b[13:]))
	subjectLen := int(int16(binary.BigEndian.Uint16(b[21:])))
	if rec.Timestamp < 0 || rec.Sequence < 0 || subjectLen <= 0 || subjectLen > MaxSubjectLen {
		return Record{}, 0, ErrBadHeader
	}
	header := fixedHeaderSize + subjectLen
	if len(b) < header {
		return Record{}, 0, ErrShort
	}
	rec.Subject = b[23 : 23+subjectLen : 23+subjectLen]
	if bytes.IndexByte(rec.Subject, 0) >= 0 {
		return Record{}, 0, ErrBadHeader
	}
	rec.PayloadCRC = int64(binary.BigEndian.Uint64(b[23+subjectLen:]))
	payloadSize := int64(int32(binary.BigEndian.Uint32(b[31+subjectLen:])))
	if rec.PayloadCRC < 0 || rec.PayloadCRC > math.MaxUint32 || payloadSize <= 0 {
		return Record{}, 0, ErrBadHeader
	}
	total := int64(header) + payloadSize
	if total > int64(len(b)) {
		return Record{}, 0, ErrShort
	}
	rec.Payload = b[header:total:total]
	if checkCRC && !rec.CheckCRC() {
		return Record{}, 0, ErrBadCRC
	}
	rec.HeaderSize = int16(header)
	rec.Size = int32(total)
	return rec, int(total), nil
}

// recordSize is the encoded size of a message record.
func recordSize(subjectLen, payloadLen int) int {
	return fixedHeaderSize + subjectLen + payloadLen
}

// encodeRecord writes a message record into b (exactly recordSize bytes).
func encodeRecord(b []byte, ts, seq int64, subject string, crc uint32, payload []byte) {
	binary.BigEndian.PutUint32(b, Magic)
	b[4] = AttrMessage
	binary.BigEndian.PutUint64(b[5:], uint64(ts))
	binary.BigEndian.PutUint64(b[13:], uint64(seq))
	binary.BigEndian.PutUint16(b[21:], uint16(len(subject)))
	n := 23 + copy(b[23:], subject)
	binary.BigEndian.PutUint64(b[n:], uint64(crc))
	binary.BigEndian.PutUint32(b[n+8:], uint32(len(payload)))
	copy(b[n+12:], payload)
}

// fillEOF is the segment filler: an EOF record if it fits. The rest of a
// segment is already zero (new segments are, and Truncate zeroes).
func fillEOF(now func() int64) func(b []byte) {
	return func(b []byte) {
		if len(b) < MinRecordSize {
			return
		}
		binary.BigEndian.PutUint32(b, Magic)
		b[4] = AttrEOF
		binary.BigEndian.PutUint64(b[5:], uint64(now()))
	}
}
