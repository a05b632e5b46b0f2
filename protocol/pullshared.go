package protocol

import "fmt"

// DecodePullResponseShared decodes a SUCCESS pull response body exactly as
// DecodePullResponse does, but allocates per response instead of per
// message: every string of every message is a substring of one copy of
// body, the messages' attributes share one array and Messages is sized
// once. It suits a consumer that hands a pull's messages on as a batch;
// keeping any string of the result keeps the copy of the whole body alive.
// Payloads alias body.
func DecodePullResponseShared(body []byte, version int16) (PullResponse, error) {
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
	first := d.Offset()

	// Pass 1: check the layout and count messages and attributes.
	msgs, attrs := 0, 0
	for i := 0; d.Remaining() > 0; i++ {
		start := d.Offset()
		id, attrStart := walkPulled(d, withTags)
		if err := d.Err(); err != nil {
			return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response message #%d (at body offset %d): %w", i, start, err)
		}
		n, err := countAttrs(body[attrStart:d.Offset()])
		if err != nil {
			return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response message #%d (%q): malformed attributes: %w", i, id, err)
		}
		msgs++
		attrs += n
	}
	if msgs == 0 {
		return r, nil
	}

	// Pass 2: parse, sharing one string and one attribute array.
	str := string(body)
	pool := make([]Attr, attrs)
	r.Messages = make([]PulledMessage, msgs)
	d = NewDecoder(body)
	d.off = first
	for i := range r.Messages {
		start := d.Offset()
		flag := body[start]
		walkPulled(d, withTags)
		end := d.Offset()
		payload := body[start:end:end]
		pm := &r.Messages[i]
		pm.PullOffset = r.FirstPullLogOffset + int64(i)
		pm.Payload = payload
		if !withTags && flag&MessageFlagTags != 0 {
			m, err := parsePulledPayload(payload, false) // rare: a copy with the tag bit cleared
			if err != nil {
				return PullResponse{}, fmt.Errorf("decode PULL_MESSAGE response message #%d: %w", i, err)
			}
			pm.Message = m
			continue
		}
		pool = parseSharedPayload(&pm.Message, &Decoder{b: payload, str: str[start:end]}, pool)
	}
	return r, nil
}

// walkPulled steps over one message of a pull response, as
// DecodePullResponse checks it, and returns its id and where its
// attributes start (body offsets). Failures are recorded in d.
func walkPulled(d *Decoder, withTags bool) ([]byte, int) {
	flag := d.Uint8()
	d.Int64()
	d.Int64()
	d.rawString16()
	id := d.rawString16()
	if withTags && flag&MessageFlagTags != 0 {
		n := int(d.Uint8())
		switch {
		case d.Err() != nil:
		case n > maxWireTags:
			d.Failf("message %q: tag count %d is over %d", id, n, maxWireTags)
		case n*2 > d.Remaining():
			d.Failf("message %q: tag count %d needs at least %d bytes, have %d", id, n, n*2, d.Remaining())
		}
		for j := 0; j < n && d.Err() == nil; j++ {
			d.rawString16()
		}
	}
	bodyLen := d.Int32()
	if d.Err() == nil && bodyLen < 0 {
		d.Failf("message %q: negative body length %d", id, bodyLen)
	}
	at := d.Offset()
	d.Raw(int(bodyLen))
	return id, at
}

// countAttrs counts the key/value pairs of an attribute region.
func countAttrs(region []byte) (int, error) {
	scan := NewDecoder(region)
	n := 0
	for scan.Remaining() > 0 {
		scan.rawString16()
		scan.Raw(int(uint16(scan.Int16())))
		n++
	}
	return n, scan.Err()
}

// parseSharedPayload is parsePayload for a payload whose layout was
// checked, with d.str set and the attributes taken from pool; it returns
// the rest of pool.
func parseSharedPayload(m *Message, d *Decoder, pool []Attr) []Attr {
	m.Flag = d.Uint8()
	m.CreateTime = d.Int64()
	m.ExpireOrScheduleTime = d.Int64()
	m.Subject = d.String16()
	m.MessageID = d.String16()
	if m.Flag&MessageFlagTags != 0 {
		m.Tags = make([]string, d.Uint8())
		for j := range m.Tags {
			m.Tags[j] = d.String16()
		}
	}
	bodyLen := int(d.Int32())
	end := d.Offset() + bodyLen
	n := 0
	for d.Offset() < end && d.Err() == nil {
		pool[n] = Attr{Key: d.String16(), Value: d.stringU16()}
		n++
	}
	if n > 0 {
		m.Attrs = pool[:n:n]
	}
	return pool[n:]
}
