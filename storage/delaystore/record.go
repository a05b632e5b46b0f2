package delaystore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Message-record format (see doc.go). The same bytes are written to the
// message log and, copied verbatim, to the schedule bucket of their time.
const (
	recMagic uint32 = 0xDE1A7001

	attrMessage uint8 = 0
	attrEOF     uint8 = 1

	// recHeaderSize is magic, attr, size and crc: also the size of the EOF
	// record that fills the rest of a segment. A segment tail shorter than
	// this holds no record.
	recHeaderSize = 4 + 1 + 4 + 4
	// recFixedSize is a message record without subject, message id and payload.
	recFixedSize = recHeaderSize + 8 + 8 + 2 + 2
	maxFieldLen  = 1<<16 - 1
)

// Decoding errors (sentinels, so the scan paths do not allocate).
var (
	errShort     = errors.New("delaystore: record truncated")
	errBadMagic  = errors.New("delaystore: bad record magic")
	errBadAttr   = errors.New("delaystore: bad record attribute")
	errBadHeader = errors.New("delaystore: invalid record header")
	errBadCRC    = errors.New("delaystore: record CRC mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is a decoded message record; the slices alias the decoded bytes.
type record struct {
	attr         uint8
	size         int
	scheduleTime int64
	seq          int64
	subject      []byte
	msgID        []byte
	payload      []byte
}

func recordSize(subject, msgID string, payload []byte) int {
	return recFixedSize + len(subject) + len(msgID) + len(payload)
}

// recordCRC covers attr and size, then everything after the header, so a
// torn or zeroed sector anywhere in the record is detected.
func recordCRC(b []byte, size int) uint32 {
	c := crc32.Update(0, castagnoli, b[4:9])
	return crc32.Update(c, castagnoli, b[recHeaderSize:size])
}

// encodeRecord writes a message record into b (exactly recordSize bytes).
func encodeRecord(b []byte, m *Message, seq int64) {
	binary.BigEndian.PutUint32(b, recMagic)
	b[4] = attrMessage
	binary.BigEndian.PutUint32(b[5:], uint32(len(b)))
	binary.BigEndian.PutUint64(b[13:], uint64(m.ScheduleTime))
	binary.BigEndian.PutUint64(b[21:], uint64(seq))
	p := 29
	binary.BigEndian.PutUint16(b[p:], uint16(len(m.Subject)))
	p += 2 + copy(b[p+2:], m.Subject)
	binary.BigEndian.PutUint16(b[p:], uint16(len(m.MessageID)))
	p += 2 + copy(b[p+2:], m.MessageID)
	copy(b[p:], m.Payload)
	binary.BigEndian.PutUint32(b[9:], recordCRC(b, len(b)))
}

// fillEOF is the segment filler of the message log and the schedule
// buckets: an EOF record when the tail has room for one (the rest is zero).
func fillEOF(b []byte) {
	if len(b) < recHeaderSize {
		return
	}
	binary.BigEndian.PutUint32(b, recMagic)
	b[4] = attrEOF
	binary.BigEndian.PutUint32(b[5:], recHeaderSize)
	binary.BigEndian.PutUint32(b[9:], recordCRC(b, recHeaderSize))
}

// decodeRecord validates the record at the start of b and returns it. With
// checkCRC false only the header is checked (scans of bytes validated
// before, e.g. loading a schedule bucket).
func decodeRecord(b []byte, checkCRC bool) (rec record, err error) {
	if len(b) < recHeaderSize {
		return record{}, errShort
	}
	if binary.BigEndian.Uint32(b) != recMagic {
		return record{}, errBadMagic
	}
	rec.attr = b[4]
	size := int64(binary.BigEndian.Uint32(b[5:]))
	switch rec.attr {
	case attrEOF:
		if size != recHeaderSize {
			return record{}, errBadHeader
		}
	case attrMessage:
		if size < recFixedSize+2 { // a subject and a message id of at least a byte
			return record{}, errBadHeader
		}
	default:
		return record{}, errBadAttr
	}
	if size > int64(len(b)) {
		return record{}, errShort
	}
	rec.size = int(size)
	if checkCRC && binary.BigEndian.Uint32(b[9:]) != recordCRC(b, rec.size) {
		return record{}, errBadCRC
	}
	if rec.attr == attrEOF {
		return rec, nil
	}
	b = b[:rec.size:rec.size]
	rec.scheduleTime = int64(binary.BigEndian.Uint64(b[13:]))
	rec.seq = int64(binary.BigEndian.Uint64(b[21:]))
	p := 29
	n := int(binary.BigEndian.Uint16(b[p:]))
	if rec.scheduleTime <= 0 || rec.seq < 0 || n == 0 || p+2+n+2 > rec.size {
		return record{}, errBadHeader
	}
	rec.subject = b[p+2 : p+2+n]
	p += 2 + n
	n = int(binary.BigEndian.Uint16(b[p:]))
	if n == 0 || p+2+n > rec.size {
		return record{}, errBadHeader
	}
	rec.msgID = b[p+2 : p+2+n]
	p += 2 + n
	rec.payload = b[p:]
	if len(rec.payload) == 0 {
		return record{}, errBadHeader
	}
	return rec, nil
}

// Dispatch-record format (see doc.go): fixed 32 bytes, so a segment whose
// size is a multiple of 32 never needs a filler.
const (
	dispMagic      uint16 = 0xD15B
	dispRecordSize int    = 32

	kindDispatched uint8 = 1
	kindCancelled  uint8 = 2
)

// dispRecord is a decoded dispatch record.
type dispRecord struct {
	kind         uint8
	seq          int64
	scheduleTime int64
	at           int64 // unix ms when it was recorded
}

func dispCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[0:4])
	return crc32.Update(c, castagnoli, b[8:dispRecordSize])
}

func encodeDisp(b []byte, r dispRecord) {
	binary.BigEndian.PutUint16(b, dispMagic)
	b[2] = r.kind
	b[3] = 0
	binary.BigEndian.PutUint64(b[8:], uint64(r.seq))
	binary.BigEndian.PutUint64(b[16:], uint64(r.scheduleTime))
	binary.BigEndian.PutUint64(b[24:], uint64(r.at))
	binary.BigEndian.PutUint32(b[4:], dispCRC(b))
}

func decodeDisp(b []byte) (dispRecord, error) {
	if len(b) < dispRecordSize {
		return dispRecord{}, errShort
	}
	if binary.BigEndian.Uint16(b) != dispMagic {
		return dispRecord{}, errBadMagic
	}
	r := dispRecord{
		kind:         b[2],
		seq:          int64(binary.BigEndian.Uint64(b[8:])),
		scheduleTime: int64(binary.BigEndian.Uint64(b[16:])),
		at:           int64(binary.BigEndian.Uint64(b[24:])),
	}
	if binary.BigEndian.Uint32(b[4:]) != dispCRC(b) {
		return dispRecord{}, errBadCRC
	}
	if (r.kind != kindDispatched && r.kind != kindCancelled) || b[3] != 0 || r.seq < 0 || r.scheduleTime <= 0 || r.at < 0 {
		return dispRecord{}, errBadHeader
	}
	return r, nil
}
