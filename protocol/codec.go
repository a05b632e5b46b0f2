package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// DecodeError is the error a Decoder records: what was being read, where, and
// what was wrong. Offsets are relative to the start of the decoded buffer.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string { return e.Msg }

// Decoder reads big-endian QMQ fields from a byte slice. It never panics and
// never reads past the slice: the first failure is recorded, every later read
// returns a zero value, and Err reports the failure.
type Decoder struct {
	b   []byte
	off int
	err error
	str string // if set, a string copy of b: strings are returned as substrings of it
}

// NewDecoder returns a Decoder reading b from offset 0.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err returns the first error encountered, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset returns the number of bytes consumed so far.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns the number of unread bytes (0 after an error).
func (d *Decoder) Remaining() int {
	if d.err != nil {
		return 0
	}
	return len(d.b) - d.off
}

// Failf records a caller-detected error at the current offset (the message
// should be self-contained) unless an error is already recorded.
func (d *Decoder) Failf(format string, args ...any) {
	if d.err == nil {
		d.err = &DecodeError{Offset: d.off, Msg: fmt.Sprintf(format, args...)}
	}
}

// take returns the next n bytes, or nil after recording an error naming what.
func (d *Decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 {
		d.err = &DecodeError{Offset: d.off, Msg: fmt.Sprintf("negative length %d for %s at offset %d", n, what, d.off)}
		return nil
	}
	if have := len(d.b) - d.off; n > have {
		d.err = &DecodeError{Offset: d.off, Msg: fmt.Sprintf("need %d bytes for %s at offset %d, have %d", n, what, d.off, have)}
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// Uint8 reads one byte.
func (d *Decoder) Uint8() uint8 {
	if p := d.take(1, "uint8"); p != nil {
		return p[0]
	}
	return 0
}

// Int16 reads a big-endian int16.
func (d *Decoder) Int16() int16 {
	if p := d.take(2, "int16"); p != nil {
		return int16(binary.BigEndian.Uint16(p))
	}
	return 0
}

// Int32 reads a big-endian int32.
func (d *Decoder) Int32() int32 {
	if p := d.take(4, "int32"); p != nil {
		return int32(binary.BigEndian.Uint32(p))
	}
	return 0
}

// Int64 reads a big-endian int64.
func (d *Decoder) Int64() int64 {
	if p := d.take(8, "int64"); p != nil {
		return int64(binary.BigEndian.Uint64(p))
	}
	return 0
}

// String16 reads an i16 length followed by that many bytes. A negative length
// is an error (QMQ's Java reader fails on it too). The bytes are returned
// as-is, without UTF-8 validation, so re-encoding is byte-exact.
func (d *Decoder) String16() string {
	at := d.off
	p := d.rawString16()
	if p == nil {
		return ""
	}
	if d.str != "" {
		return d.str[at+2 : d.off]
	}
	return string(p)
}

// rawString16 is String16 without the copy: it returns the string's bytes
// as a sub-slice (non-nil on success, even when empty).
func (d *Decoder) rawString16() []byte {
	if d.err != nil {
		return nil
	}
	at := d.off
	p := d.take(2, "string length")
	if p == nil {
		return nil
	}
	n := int16(binary.BigEndian.Uint16(p))
	if n < 0 {
		d.err = &DecodeError{Offset: at, Msg: fmt.Sprintf("negative string length %d at offset %d", n, at)}
		return nil
	}
	return d.take(int(n), "string")
}

// stringU16 reads a string whose i16 length is reinterpreted as unsigned, the
// way QMQ's Java consumer reads message attribute values: a value of
// 32768..65535 bytes is written with a "negative" length and read back as
// length+65536.
func (d *Decoder) stringU16() string {
	p := d.take(2, "string length")
	if p == nil {
		return ""
	}
	at := d.off
	p = d.take(int(binary.BigEndian.Uint16(p)), "string")
	if p == nil {
		return ""
	}
	if d.str != "" {
		return d.str[at:d.off]
	}
	return string(p)
}

// Bytes32 reads an i32 length followed by that many bytes, returned as a
// sub-slice of the input (no copy; capacity clipped to the length).
func (d *Decoder) Bytes32() []byte {
	if d.err != nil {
		return nil
	}
	at := d.off
	p := d.take(4, "byte-array length")
	if p == nil {
		return nil
	}
	n := int32(binary.BigEndian.Uint32(p))
	if n < 0 {
		d.err = &DecodeError{Offset: at, Msg: fmt.Sprintf("negative byte-array length %d at offset %d", n, at)}
		return nil
	}
	return d.take(int(n), "byte array")
}

// Raw returns the next n bytes as a sub-slice of the input (no copy).
func (d *Decoder) Raw(n int) []byte { return d.take(n, "raw bytes") }

// AppendUint8 appends one byte.
func AppendUint8(dst []byte, v uint8) []byte { return append(dst, v) }

// AppendInt16 appends a big-endian int16.
func AppendInt16(dst []byte, v int16) []byte { return binary.BigEndian.AppendUint16(dst, uint16(v)) }

// AppendInt32 appends a big-endian int32.
func AppendInt32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }

// AppendInt64 appends a big-endian int64.
func AppendInt64(dst []byte, v int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(v)) }

// AppendString16 appends an i16 length and the bytes of s. It cannot fail: a
// string longer than MaxString16Len is cut to the longest prefix that fits
// (at a UTF-8 boundary) rather than producing a corrupt length. Callers for
// whom truncation would be wrong must check ValidateString16 first.
func AppendString16(dst []byte, s string) []byte {
	s = clip16(s)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// clip16 shortens s to at most MaxString16Len bytes without splitting a rune.
func clip16(s string) string {
	if len(s) <= MaxString16Len {
		return s
	}
	cut := MaxString16Len
	for cut > 0 && cut > MaxString16Len-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// ValidateString16 checks that s fits a str16 field; field names it in the error.
func ValidateString16(field, s string) error {
	if len(s) > MaxString16Len {
		return fmt.Errorf("%s is %d bytes long; QMQ strings carry an int16 length and are limited to %d bytes",
			field, len(s), MaxString16Len)
	}
	return nil
}

// AppendBytes32 appends an i32 length and b.
func AppendBytes32(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// AppendErrorBody appends the body our servers send with a failure status: a
// str16 human-readable message (truncated to MaxString16Len bytes).
func AppendErrorBody(dst []byte, msg string) []byte { return AppendString16(dst, msg) }

// DecodeErrorBody extracts the message from an error body. It never fails:
// an empty or unparseable body (Java servers send empty ones) yields "".
func DecodeErrorBody(body []byte) string {
	d := NewDecoder(body)
	s := d.String16()
	if d.Err() != nil {
		return ""
	}
	return s
}
