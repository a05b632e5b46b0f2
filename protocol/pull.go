package protocol

import "fmt"

// Pull filter types (PullFilter.Type).
const (
	PullFilterTag             int16 = 1 // TagType + Tags
	PullFilterSubEnvIsolation int16 = 2 // Env + SubEnv
)

// Tag filter modes (PullFilter.TagType).
const (
	TagTypeNone int16 = 0 // no filtering (Java drops such a filter when decoding)
	TagTypeOr   int16 = 1 // the message has at least one of the tags
	TagTypeAnd  int16 = 2 // the message has all of the tags
)

// maxPullFilters bounds the filter count of a decoded PULL_MESSAGE (each
// filter takes at least 2 bytes, so a count is also checked against the
// remaining bytes).
const maxPullFilters = 1024

// PullFilter is one server-side filter of a PULL_MESSAGE request.
//
// Wire form (version >= 9, inside the filter list): type i16 | then for
// TAG: tagType i16 | tagCount i8 | (len i16 + bytes)...; for
// SUB_ENV_ISOLATION: env str16 | subEnv str16. Version 8 carries exactly one
// tag filter without the type field; earlier versions carry none.
type PullFilter struct {
	Type    int16    // PullFilterTag or PullFilterSubEnvIsolation
	TagType int16    // TAG: TagTypeNone, TagTypeOr or TagTypeAnd
	Tags    []string // TAG: at most 127
	Env     string   // SUB_ENV_ISOLATION
	SubEnv  string   // SUB_ENV_ISOLATION
}

// PullRequest is the body of PULL_MESSAGE (11):
//
//	subject str16 | group str16 | consumerId str16 | requestNum i32 |
//	offset i64 | pullOffsetBegin i64 | pullOffsetLast i64 | timeoutMillis i64 |
//	broadcast i8 | filters (version >= 9: count i32 + filters; version 8: one
//	tag filter without type; earlier: nothing)
//
// TimeoutMillis < 0 means "answer at once", 0 answers at once too (Java
// never suspends without a positive timeout), > 0 is a long poll.
// PullOffsetLast is the last pull-log offset the consumer has received (-1
// none): when it is behind the broker's, the broker redelivers.
type PullRequest struct {
	Subject, ConsumerGroup, ConsumerID string
	RequestNum                         int32
	Offset                             int64
	PullOffsetBegin, PullOffsetLast    int64
	TimeoutMillis                      int64
	Broadcast                          bool
	Filters                            []PullFilter
}

// AppendPullRequest appends r's wire form for the given header version.
// Version 8 can carry only one tag filter: the first TAG filter is written
// (or an empty NO_TAG one); other filters are dropped. Strings longer than
// MaxString16Len are truncated, tag lists beyond 127 cut.
func AppendPullRequest(dst []byte, r *PullRequest, version int16) []byte {
	dst = AppendString16(dst, r.Subject)
	dst = AppendString16(dst, r.ConsumerGroup)
	dst = AppendString16(dst, r.ConsumerID)
	dst = AppendInt32(dst, r.RequestNum)
	dst = AppendInt64(dst, r.Offset)
	dst = AppendInt64(dst, r.PullOffsetBegin)
	dst = AppendInt64(dst, r.PullOffsetLast)
	dst = AppendInt64(dst, r.TimeoutMillis)
	if r.Broadcast {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	switch {
	case version < Version8:
	case version < Version9:
		for i := range r.Filters {
			if r.Filters[i].Type == PullFilterTag {
				return appendTagFilter(dst, &r.Filters[i])
			}
		}
		return appendTagFilter(dst, &PullFilter{Type: PullFilterTag})
	default:
		dst = AppendInt32(dst, int32(len(r.Filters)))
		for i := range r.Filters {
			f := &r.Filters[i]
			dst = AppendInt16(dst, f.Type)
			switch f.Type {
			case PullFilterTag:
				dst = appendTagFilter(dst, f)
			case PullFilterSubEnvIsolation:
				dst = AppendString16(dst, f.Env)
				dst = AppendString16(dst, f.SubEnv)
			}
		}
	}
	return dst
}

func appendTagFilter(dst []byte, f *PullFilter) []byte {
	tags := f.Tags
	if len(tags) > maxWireTags {
		tags = tags[:maxWireTags]
	}
	dst = AppendInt16(dst, f.TagType)
	dst = append(dst, byte(len(tags)))
	for _, t := range tags {
		dst = AppendString16(dst, t)
	}
	return dst
}

// DecodePullRequest parses a PULL_MESSAGE body of the given header version.
// Unlike Java, a TAG filter with TagTypeNone is kept (it filters nothing);
// an unknown filter type is an error, as in Java. Trailing bytes are ignored.
func DecodePullRequest(body []byte, version int16) (PullRequest, error) {
	d := NewDecoder(body)
	var r PullRequest
	r.Subject = d.String16()
	r.ConsumerGroup = d.String16()
	r.ConsumerID = d.String16()
	r.RequestNum = d.Int32()
	r.Offset = d.Int64()
	r.PullOffsetBegin = d.Int64()
	r.PullOffsetLast = d.Int64()
	r.TimeoutMillis = d.Int64()
	r.Broadcast = d.Uint8() != 0
	switch {
	case version < Version8:
	case version < Version9:
		f := decodeTagFilter(d)
		if d.Err() == nil {
			r.Filters = []PullFilter{f}
		}
	default:
		n := d.Int32()
		if d.Err() == nil && n > 0 {
			if n > maxPullFilters || int(n)*2 > d.Remaining() {
				d.Failf("pull filter count %d is over the limit or needs more than the %d bytes left", n, d.Remaining())
				break
			}
			r.Filters = make([]PullFilter, 0, n)
			for i := 0; i < int(n) && d.Err() == nil; i++ {
				at := d.Offset()
				typ := d.Int16()
				switch {
				case d.Err() != nil:
				case typ == PullFilterTag:
					f := decodeTagFilter(d)
					r.Filters = append(r.Filters, f)
				case typ == PullFilterSubEnvIsolation:
					f := PullFilter{Type: typ, Env: d.String16(), SubEnv: d.String16()}
					r.Filters = append(r.Filters, f)
				default:
					d.Failf("unknown pull filter type %d at offset %d", typ, at)
				}
			}
		}
	}
	if err := d.Err(); err != nil {
		return PullRequest{}, fmt.Errorf("decode PULL_MESSAGE request (version %d): %w", version, err)
	}
	return r, nil
}

func decodeTagFilter(d *Decoder) PullFilter {
	f := PullFilter{Type: PullFilterTag, TagType: d.Int16()}
	at := d.Offset()
	n := int(int8(d.Uint8()))
	switch {
	case d.Err() != nil:
		return f
	case n < 0:
		d.Failf("negative tag count %d at offset %d", n, at)
		return f
	case n*2 > d.Remaining():
		d.Failf("tag count %d needs at least %d bytes, have %d", n, n*2, d.Remaining())
		return f
	case n == 0:
		return f
	}
	f.Tags = make([]string, n)
	for i := range f.Tags {
		f.Tags[i] = d.String16()
	}
	return f
}

// PullResponse is the body of a SUCCESS answer to PULL_MESSAGE:
//
//	firstPullLogOffset i64 | consumerOffset i64 (always -1; the Java client
//	ignores it) | message payloads, concatenated
//
// Each payload is a stored message exactly as the producer sent it minus its
// 8-byte CRC (flag | createTime | expireOrScheduleTime | subject | messageId
// | [tags] | bodyLen i32 | attributes). The i-th message has pull-log offset
// FirstPullLogOffset+i (for broadcast, the consumer-log sequence): the Java
// client numbers them this way and acks by these offsets. A response with no
// messages is sent as NO_MESSAGE with an empty body, not as a PullResponse.
//
// For request versions below 8 the broker removes the tag list from tagged
// messages but leaves the flag's tag bit set (old clients never read tags);
// DecodePullResponse with such a version does not read tags.
type PullResponse struct {
	FirstPullLogOffset int64
	ConsumerOffset     int64 // -1 from Java brokers and ours
	Messages           []PulledMessage
}

// PulledMessage is one message of a pull response.
type PulledMessage struct {
	PullOffset int64  // FirstPullLogOffset + index
	Payload    []byte // the message bytes as stored (no CRC); aliases the body
	Message    Message
}

// PullResponseHeaderSize is the size of the fixed part of a pull response.
const PullResponseHeaderSize = 16

// AppendPullResponseHeader appends firstPullLogOffset and the -1 consumer
// offset; the payloads follow (see AppendPulledPayload), possibly written
// straight from storage without copying.
func AppendPullResponseHeader(dst []byte, firstPullLogOffset int64) []byte {
	dst = AppendInt64(dst, firstPullLogOffset)
	return AppendInt64(dst, -1)
}

// PulledPayloadNeedsRewrite reports whether a stored payload must be
// rewritten (tags removed) for a client of the given request version.
func PulledPayloadNeedsRewrite(payload []byte, version int16) bool {
	return version < Version8 && len(payload) > 0 && payload[0]&MessageFlagTags != 0
}

// AppendPulledPayload appends one stored payload as a client of the given
// request version expects it: as is for version >= 8; for older versions
// with its tag list cut out (the flag is left as it is, as Java does). A
// payload too malformed to locate its tags is appended unchanged.
func AppendPulledPayload(dst, payload []byte, version int16) []byte {
	if !PulledPayloadNeedsRewrite(payload, version) {
		return append(dst, payload...)
	}
	d := NewDecoder(payload)
	d.Uint8()
	d.Int64()
	d.Int64()
	d.rawString16()
	d.rawString16()
	tagsAt := d.Offset()
	n := int(d.Uint8())
	for i := 0; i < n && d.Err() == nil; i++ {
		d.rawString16()
	}
	if d.Err() != nil {
		return append(dst, payload...)
	}
	dst = append(dst, payload[:tagsAt]...)
	return append(dst, payload[d.Offset():]...)
}

// AppendPullResponse appends a whole pull response body: the header, then
// each payload as AppendPulledPayload writes it for version.
func AppendPullResponse(dst []byte, firstPullLogOffset int64, payloads [][]byte, version int16) []byte {
	dst = AppendPullResponseHeader(dst, firstPullLogOffset)
	for _, p := range payloads {
		dst = AppendPulledPayload(dst, p, version)
	}
	return dst
}

// DecodePullResponse parses a SUCCESS pull response body as a client that
// sent a request of the given version. An empty body decodes to an empty
// response (the Java client does the same). Payloads and strings alias body.
func DecodePullResponse(body []byte, version int16) (PullResponse, error) {
	var r PullResponse
	if len(body) == 0 {
		return r, nil
	}
	d := NewDecoder(body)
	r.FirstPullLogOffset = d.Int64()
	r.ConsumerOffset = d.Int64()
	if err := d.Err(); err != nil {
		return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response: %w", err)
	}
	withTags := version >= Version8
	for i := 0; d.Remaining() > 0; i++ {
		start := d.Offset()
		id, _ := walkPulled(d, withTags)
		if err := d.Err(); err != nil {
			return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response message #%d (at body offset %d): %w", i, start, err)
		}
		payload := body[start:d.Offset():d.Offset()]
		m, err := parsePulledPayload(payload, withTags)
		if err != nil {
			return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response message #%d (%q): %w", i, id, err)
		}
		r.Messages = append(r.Messages, PulledMessage{PullOffset: r.FirstPullLogOffset + int64(i), Payload: payload, Message: m})
	}
	return r, nil
}

// parsePulledPayload decodes a payload whose layout was walked already.
// Without tags (old versions) and a tag bit set, the bit is cleared for the
// parse and restored after.
func parsePulledPayload(payload []byte, withTags bool) (Message, error) {
	if withTags || payload[0]&MessageFlagTags == 0 {
		return parsePayload(payload)
	}
	cp := append([]byte(nil), payload...)
	cp[0] &^= MessageFlagTags
	m, err := parsePayload(cp)
	m.Flag = payload[0]
	return m, err
}

// AckRequest is the body of ACK_REQUEST (12):
//
//	subject str16 | group str16 | consumerId str16 | pullOffsetBegin i64 |
//	pullOffsetLast i64 | broadcast i8 (version >= 8 only)
//
// It acknowledges pull-log offsets PullOffsetBegin..PullOffsetLast
// (inclusive). PullOffsetBegin < 0 makes it a heartbeat that acks nothing.
type AckRequest struct {
	Subject, ConsumerGroup, ConsumerID string
	PullOffsetBegin, PullOffsetLast    int64
	Broadcast                          bool
}

// IsHeartbeat reports whether the request only signals liveness.
func (a *AckRequest) IsHeartbeat() bool { return a.PullOffsetBegin < 0 }

// AppendAckRequest appends a's wire form for the given header version.
func AppendAckRequest(dst []byte, a *AckRequest, version int16) []byte {
	dst = AppendString16(dst, a.Subject)
	dst = AppendString16(dst, a.ConsumerGroup)
	dst = AppendString16(dst, a.ConsumerID)
	dst = AppendInt64(dst, a.PullOffsetBegin)
	dst = AppendInt64(dst, a.PullOffsetLast)
	if version >= Version8 {
		if a.Broadcast {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	return dst
}

// DecodeAckRequest parses an ACK_REQUEST body of the given header version.
// Java treats only a broadcast byte of exactly 1 as true; so does this.
func DecodeAckRequest(body []byte, version int16) (AckRequest, error) {
	d := NewDecoder(body)
	var a AckRequest
	a.Subject = d.String16()
	a.ConsumerGroup = d.String16()
	a.ConsumerID = d.String16()
	a.PullOffsetBegin = d.Int64()
	a.PullOffsetLast = d.Int64()
	if version >= Version8 {
		a.Broadcast = d.Uint8() == 1
	}
	if err := d.Err(); err != nil {
		return AckRequest{}, fmt.Errorf("decode ACK_REQUEST (version %d): %w", version, err)
	}
	return a, nil
}

// PayloadTags calls f with each tag of a stored message payload (flag |
// createTime | expireTime | subject | messageId | [tags] ...), as a sub-slice
// of payload, without allocating; f returns false to stop. It reports false
// if the payload is too short to hold the tags its flag announces.
func PayloadTags(payload []byte, f func(tag []byte) bool) bool {
	d := NewDecoder(payload)
	flag := d.Uint8()
	if d.Err() != nil || flag&MessageFlagTags == 0 {
		return d.Err() == nil
	}
	d.Int64()
	d.Int64()
	d.rawString16()
	d.rawString16()
	n := int(d.Uint8())
	for i := 0; i < n; i++ {
		t := d.rawString16()
		if t == nil {
			return false
		}
		if !f(t) {
			return true
		}
	}
	return d.Err() == nil
}

// DecodePayload decodes one stored message payload (a message without its
// CRC, as the broker stores and serves it). Trailing bytes are an error.
// The strings do not alias payload.
func DecodePayload(payload []byte) (Message, error) {
	buf := make([]byte, 0, PullResponseHeaderSize+len(payload))
	buf = AppendPullResponseHeader(buf, 0)
	r, err := DecodePullResponse(append(buf, payload...), CurrentVersion)
	if err != nil {
		return Message{}, err
	}
	if len(r.Messages) != 1 {
		return Message{}, fmt.Errorf("payload holds %d messages, want 1", len(r.Messages))
	}
	return r.Messages[0].Message, nil
}
