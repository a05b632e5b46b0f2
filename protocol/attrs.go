package protocol

import "encoding/binary"

// PayloadAttrs calls f with each attribute of a stored message payload
// (flag | createTime | expireTime | subject | messageId | [tags] | bodyLen
// i32 | (key str16 | value u16-length string)…), key and value as
// sub-slices of payload, without allocating; f returns false to stop. It
// reports false when the payload is malformed.
func PayloadAttrs(payload []byte, f func(key, value []byte) bool) bool {
	d := NewDecoder(payload)
	flag := d.Uint8()
	d.Int64()
	d.Int64()
	d.rawString16()
	d.rawString16()
	if flag&MessageFlagTags != 0 {
		n := int(d.Uint8())
		for i := 0; i < n; i++ {
			d.rawString16()
		}
	}
	bodyLen := int(d.Int32())
	if d.Err() != nil || bodyLen < 0 || bodyLen > d.Remaining() {
		return false
	}
	b := NewDecoder(d.Raw(bodyLen))
	for b.Remaining() > 0 {
		k := b.rawString16()
		n := b.take(2, "attribute value length")
		if n == nil {
			return false
		}
		v := b.take(int(binary.BigEndian.Uint16(n)), "attribute value")
		if k == nil || v == nil {
			return false
		}
		if !f(k, v) {
			return true
		}
	}
	return b.Err() == nil
}
