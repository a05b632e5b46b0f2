package protocol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// Message flag bits (Message.Flag).
const (
	MessageFlagUnreliable byte = 1 // not replicated before the send is acknowledged
	MessageFlagDelay      byte = 2 // ExpireOrScheduleTime is the schedule time
	MessageFlagTags       byte = 4 // a tag list follows the message id
)

// MaxTags is the most tags a producer may attach to a message.
const MaxTags = 10

// maxWireTags is the most tags a decoder accepts: Java reads the count as a
// signed byte, so 128..255 cannot come from a working producer.
const maxWireTags = 127

// Attr is one message property. Order is preserved on the wire.
type Attr struct{ Key, Value string }

// Message is the decoded form of one message as a producer sends it.
type Message struct {
	Flag                 byte
	CreateTime           int64 // ms since epoch
	ExpireOrScheduleTime int64 // ms since epoch; schedule time if Flag&MessageFlagDelay
	Subject              string
	MessageID            string
	Tags                 []string
	Attrs                []Attr
}

// RawMessage is one message as received. Payload is the bytes after the CRC
// exactly as sent (what the broker stores); it aliases the decoded body.
type RawMessage struct {
	CRC     int64
	Payload []byte
	// Wire is the whole message as sent, CRC included (the 8 bytes before
	// Payload); it aliases the decoded body too.
	Wire    []byte
	Message Message
}

// Size is the message's encoded size including its 8-byte CRC.
func (m *RawMessage) Size() int { return 8 + len(m.Payload) }

// AppendMessage appends the wire form of m (crc i64 | flag u8 | createTime i64
// | expireOrScheduleTime i64 | subject str16 | messageId str16 | [tagCount u8,
// tags str16...] | bodyLen i32 | (key str16, value str16)...) and computes the
// CRC. The tags bit of the flag is set whenever Tags is non-empty; a flag
// with the bit set and no tags encodes a zero tag count. On error dst is
// returned unchanged.
func AppendMessage(dst []byte, m *Message) ([]byte, error) {
	if err := validateMessage(m); err != nil {
		return dst, err
	}
	flag := m.Flag
	if len(m.Tags) > 0 {
		flag |= MessageFlagTags
	}
	dst = slices.Grow(dst, encodedMessageSize(m)) // one allocation, not one per field
	crcAt := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	start := len(dst)
	dst = append(dst, flag)
	dst = AppendInt64(dst, m.CreateTime)
	dst = AppendInt64(dst, m.ExpireOrScheduleTime)
	dst = AppendString16(dst, m.Subject)
	dst = AppendString16(dst, m.MessageID)
	if flag&MessageFlagTags != 0 {
		dst = append(dst, byte(len(m.Tags)))
		for _, t := range m.Tags {
			dst = AppendString16(dst, t)
		}
	}
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for _, a := range m.Attrs {
		dst = AppendString16(dst, a.Key)
		dst = AppendString16(dst, a.Value)
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	binary.BigEndian.PutUint64(dst[crcAt:], uint64(crc32.ChecksumIEEE(dst[start:])))
	return dst, nil
}

// EncodedMessageSize validates m as AppendMessage does and returns how many
// bytes AppendMessage will append for it.
func EncodedMessageSize(m *Message) (int, error) {
	if err := validateMessage(m); err != nil {
		return 0, err
	}
	return encodedMessageSize(m), nil
}

// encodedMessageSize is what AppendMessage appends for a valid m.
func encodedMessageSize(m *Message) int {
	n := 8 + 1 + 8 + 8 + 2 + len(m.Subject) + 2 + len(m.MessageID) + 4
	if len(m.Tags) > 0 {
		n++
		for _, t := range m.Tags {
			n += 2 + len(t)
		}
	}
	for _, a := range m.Attrs {
		n += 4 + len(a.Key) + len(a.Value)
	}
	return n
}

func validateMessage(m *Message) error {
	if err := ValidateString16("subject", m.Subject); err != nil {
		return err
	}
	if err := ValidateString16("messageId", m.MessageID); err != nil {
		return err
	}
	if len(m.Tags) > MaxTags {
		return fmt.Errorf("message %q has %d tags; QMQ allows at most %d", m.MessageID, len(m.Tags), MaxTags)
	}
	for i, t := range m.Tags {
		if len(t) > MaxString16Len {
			return ValidateString16(fmt.Sprintf("tag #%d of message %q", i, m.MessageID), t)
		}
	}
	body := 0
	for _, a := range m.Attrs {
		if len(a.Key) > MaxString16Len {
			return ValidateString16(fmt.Sprintf("attribute key of message %q", m.MessageID), a.Key)
		}
		if len(a.Value) > MaxString16Len {
			return ValidateString16(fmt.Sprintf("attribute %q of message %q", a.Key, m.MessageID), a.Value)
		}
		body += 4 + len(a.Key) + len(a.Value)
		if body > math.MaxInt32 {
			return fmt.Errorf("message %q: attributes exceed %d bytes", m.MessageID, math.MaxInt32)
		}
	}
	return nil
}

// DecodeMessages splits a SEND_MESSAGE body into its messages and verifies
// each CRC. A message whose encoded size (CRC included) exceeds
// maxMessageSize is an error naming both (maxMessageSize <= 0: no limit).
//
// version is the request's header version. It does not change the layout:
// like QMQ's Java broker, the tag list is present exactly when the flag has
// MessageFlagTags, whatever the version (the Java delay server forwards tagged
// messages in version-7 frames).
func DecodeMessages(body []byte, version int16, maxMessageSize int) ([]RawMessage, error) {
	return decodeMessages(body, maxMessageSize, true)
}

// DecodeMessageHeaders is DecodeMessages for a broker, which stores payloads
// as they came: every message is validated (layout, size, CRC) the same way,
// but its Message holds only Flag, CreateTime, ExpireOrScheduleTime, Subject
// and MessageID — no tags or attributes — which spares copying each payload
// into strings on the produce path.
func DecodeMessageHeaders(body []byte, version int16, maxMessageSize int) ([]RawMessage, error) {
	return decodeMessages(body, maxMessageSize, false)
}

func decodeMessages(body []byte, maxMessageSize int, full bool) ([]RawMessage, error) {
	var out []RawMessage
	d := NewDecoder(body)
	for i := 0; d.Remaining() > 0; i++ {
		at := d.Offset()
		rm, err := decodeMessage(d, body, maxMessageSize, full)
		if err != nil {
			return nil, fmt.Errorf("SEND_MESSAGE message #%d (starting at body offset %d): %w", i, at, err)
		}
		out = append(out, rm)
	}
	return out, nil
}

// decodeMessage walks one message's header without allocating, checks its
// size and CRC, then parses the payload (full) or keeps its header fields.
func decodeMessage(d *Decoder, body []byte, maxMessageSize int, full bool) (RawMessage, error) {
	start := d.Offset()
	crc := d.Int64()
	payloadStart := d.Offset()
	flag := d.Uint8()
	created := d.Int64()
	expireOrSchedule := d.Int64()
	subject := d.rawString16()
	id := d.rawString16()
	if flag&MessageFlagTags != 0 {
		n := int(d.Uint8())
		switch {
		case d.Err() != nil:
		case n > maxWireTags:
			d.Failf("message %q: tag count %d is over %d (Java producers send at most %d)", id, n, maxWireTags, MaxTags)
		case n*2 > d.Remaining():
			d.Failf("message %q: tag count %d needs at least %d bytes, have %d", id, n, n*2, d.Remaining())
		}
		for j := 0; j < n && d.Err() == nil; j++ {
			d.rawString16()
		}
	}
	bodyLen := int(d.Int32())
	if err := d.Err(); err != nil {
		return RawMessage{}, err
	}
	headerLen := d.Offset() - start
	if bodyLen < 0 {
		return RawMessage{}, fmt.Errorf("message %q: negative body length %d", id, bodyLen)
	}
	size := int64(headerLen) + int64(bodyLen)
	if maxMessageSize > 0 && size > int64(maxMessageSize) {
		return RawMessage{}, fmt.Errorf("message %q is %d bytes, over the %d-byte message size limit", id, size, maxMessageSize)
	}
	if d.Raw(bodyLen); d.Err() != nil {
		return RawMessage{}, fmt.Errorf("message %q: body length %d runs past the end of the request: %w", id, bodyLen, d.Err())
	}
	payload := body[payloadStart:d.Offset():d.Offset()]
	wire := body[start:d.Offset():d.Offset()]
	if sum := int64(crc32.ChecksumIEEE(payload)); sum != crc {
		return RawMessage{}, fmt.Errorf("message %q: CRC mismatch: sender says 0x%X, payload hashes to 0x%X (corrupted in transit or a faulty producer)", id, crc, sum)
	}
	if !full {
		// Attributes are still checked, so a malformed message is refused
		// now rather than handed to every consumer; checking allocates nothing.
		attrs := NewDecoder(body[d.Offset()-bodyLen : d.Offset()])
		for attrs.Remaining() > 0 {
			attrs.rawString16()
			attrs.Raw(int(uint16(attrs.Int16())))
		}
		if err := attrs.Err(); err != nil {
			return RawMessage{}, fmt.Errorf("message %q: malformed attributes: %w", id, err)
		}
		m := Message{Flag: flag, CreateTime: created, ExpireOrScheduleTime: expireOrSchedule, Subject: string(subject), MessageID: string(id)}
		return RawMessage{CRC: crc, Payload: payload, Wire: wire, Message: m}, nil
	}
	m, err := parsePayload(payload)
	if err != nil {
		return RawMessage{}, fmt.Errorf("message %q: %w", id, err)
	}
	return RawMessage{CRC: crc, Payload: payload, Wire: wire, Message: m}, nil
}

// parsePayload decodes a payload whose header decodeMessage has validated.
// All strings share one copy of the payload (a message's strings are
// retained together or not at all), which keeps decoding to three
// allocations per message.
func parsePayload(payload []byte) (Message, error) {
	d := &Decoder{b: payload, str: string(payload)}
	var m Message
	m.Flag = d.Uint8()
	m.CreateTime = d.Int64()
	m.ExpireOrScheduleTime = d.Int64()
	m.Subject = d.String16()
	m.MessageID = d.String16()
	if m.Flag&MessageFlagTags != 0 {
		n := int(d.Uint8())
		m.Tags = make([]string, n)
		for j := range m.Tags {
			m.Tags[j] = d.String16()
		}
	}
	bodyLen := int(d.Int32())
	attrStart := d.Offset()

	// Count the attributes first so the slice is allocated once.
	scan := NewDecoder(payload[attrStart : attrStart+bodyLen])
	n := 0
	for scan.Remaining() > 0 {
		scan.rawString16()
		scan.Raw(int(uint16(scan.Int16())))
		n++
	}
	if err := scan.Err(); err != nil {
		return Message{}, fmt.Errorf("malformed attributes: %w", err)
	}
	if n > 0 {
		m.Attrs = make([]Attr, n)
		for j := range m.Attrs {
			m.Attrs[j] = Attr{Key: d.String16(), Value: d.stringU16()}
		}
	}
	if err := d.Err(); err != nil {
		// Unreachable: decodeMessage validated the layout.
		return Message{}, err
	}
	return m, nil
}

// SendResult is one entry of a SEND_MESSAGE response body. QMQ brokers list
// only the messages that failed; an absent message succeeded.
type SendResult struct {
	MessageID string
	Code      int32
	Remark    string
}

// AppendSendResults appends messageId str16 | code i32 | remark str16 for
// each result, as given (pass only failures, as QMQ brokers do). Over-long
// strings are truncated.
func AppendSendResults(dst []byte, rs []SendResult) []byte {
	for i := range rs {
		dst = AppendString16(dst, rs[i].MessageID)
		dst = AppendInt32(dst, rs[i].Code)
		dst = AppendString16(dst, rs[i].Remark)
	}
	return dst
}

// DecodeSendResults parses a SEND_MESSAGE response body.
func DecodeSendResults(body []byte) ([]SendResult, error) {
	var out []SendResult
	d := NewDecoder(body)
	for d.Remaining() > 0 {
		r := SendResult{MessageID: d.String16(), Code: d.Int32(), Remark: d.String16()}
		if d.Err() != nil {
			break
		}
		out = append(out, r)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode SEND_MESSAGE response: %w", err)
	}
	return out, nil
}
