package tx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/qmq-go/qmq/client"
)

// The content column holds a message the way QMQ's Java client writes it:
// Gson (with LongSerializationPolicy.STRING, HTML escaping on, the
// default) serializing BaseMessage, whose non-transient fields are, in
// declaration order, messageId, subject, tags (a set), storeAtFailed,
// durable and attrs (a HashMap<String, Object>):
//
//	{"messageId":"241207.120000.10.0.0.1.42.7","subject":"order.paid","tags":["vip"],
//	 "storeAtFailed":false,"durable":true,"attrs":{"qmq_createTime":"1733572800000","k":"v"}}
//
// Java longs (qmq_createTime, qmq_expireTime, qmq_scheduleReceiveTime and
// any setProperty(String, long)) are JSON strings; ints, floats and
// booleans are JSON numbers and booleans. A Go message's properties are
// strings, and are written as JSON strings: for the reserved longs that is
// exactly Java's form, and Java reads any property back from a string
// (getIntProperty parses toString()). It is also the safer form for QMQ's
// Java watchdog, which parses attrs into Object and so turns the number 3
// into the Double 3.0 and puts "3.0" on the wire, where a string "3" stays
// "3".

// storeAtFailed and durable are Java-only flags (the Go client has neither
// concept); they are written with the values Java's BaseMessage has for a
// transactional message and ignored when read.
const (
	javaStoreAtFailed = false
	javaDurable       = true
)

// Encode returns m as QMQ's Java client writes it into the content column.
// Properties are written in sorted key order (Java's is HashMap order,
// which no reader depends on), so the same message always gives the same
// bytes.
func Encode(m *client.Message) []byte {
	props := m.Properties()
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	b := make([]byte, 0, 256)
	b = append(b, `{"messageId":`...)
	b = appendGsonString(b, m.ID())
	b = append(b, `,"subject":`...)
	b = appendGsonString(b, m.Subject())
	b = append(b, `,"tags":[`...)
	for i, t := range m.Tags() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendGsonString(b, t)
	}
	b = append(b, `],"storeAtFailed":`...)
	b = strconv.AppendBool(b, javaStoreAtFailed)
	b = append(b, `,"durable":`...)
	b = strconv.AppendBool(b, javaDurable)
	b = append(b, `,"attrs":{`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendGsonString(b, k)
		b = append(b, ':')
		b = appendGsonString(b, props[k])
	}
	return append(b, "}}"...)
}

// appendGsonString appends s as a JSON string escaped the way Gson's
// JsonWriter does with HTML escaping on: control characters as \uXXXX
// (lower-case hex) except \t \b \n \r \f, the quote and backslash, the
// HTML-sensitive < > & = ' as \u003c \u003e \u0026 \u003d \u0027, and
// U+2028/U+2029; everything else, non-ASCII included, as is. Strings are
// valid UTF-8 (Validate checked), so the bytes can be copied.
func appendGsonString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		size := 1
		switch {
		case c == '"':
			esc = `\"`
		case c == '\\':
			esc = `\\`
		case c == '\t':
			esc = `\t`
		case c == '\b':
			esc = `\b`
		case c == '\n':
			esc = `\n`
		case c == '\r':
			esc = `\r`
		case c == '\f':
			esc = `\f`
		case c < 0x20, c == '<', c == '>', c == '&', c == '=', c == '\'':
			esc = `\u00` + string(hex[c>>4]) + string(hex[c&0xf])
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			esc, size = `\u202`+string(hex[s[i+2]-0xa0]), 3 // U+2028, U+2029
		}
		if esc == "" {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// javaMessage is what Decode reads. Unknown fields are ignored, as Gson
// does.
type javaMessage struct {
	MessageID string                     `json:"messageId"`
	Subject   string                     `json:"subject"`
	Tags      []*string                  `json:"tags"`
	Attrs     map[string]json.RawMessage `json:"attrs"`
}

// Decode reads the content column: a message as QMQ's Java client (or
// Encode) wrote it, for re-sending with its original id. Every attribute
// becomes a string property: JSON strings as they are, numbers as written
// (3 stays "3", where QMQ's Java watchdog would send "3.0"), booleans as
// "true"/"false"; null attributes are dropped, as Gson drops them. A
// message without id or subject, or with an object or array attribute
// (which no Java setter produces), is an error.
func Decode(content []byte) (*client.Message, error) {
	var jm javaMessage
	if err := json.Unmarshal(content, &jm); err != nil {
		return nil, fmt.Errorf("message content is not QMQ's JSON form: %w (content %s)", err, abbreviate(content))
	}
	if jm.MessageID == "" || jm.Subject == "" {
		return nil, fmt.Errorf("message content lacks messageId or subject: %s", abbreviate(content))
	}
	tags := make([]string, 0, len(jm.Tags))
	for i, t := range jm.Tags {
		if t == nil || *t == "" {
			return nil, fmt.Errorf("message %s: tag %d is null or empty", jm.MessageID, i)
		}
		tags = append(tags, *t)
	}
	props := make(map[string]string, len(jm.Attrs))
	for k, raw := range jm.Attrs {
		v, ok, err := attrString(raw)
		if err != nil {
			return nil, fmt.Errorf("message %s: attribute %q: %w", jm.MessageID, k, err)
		}
		if ok && k != "" { // Java ignores properties without a name
			props[k] = v
		}
	}
	return client.RestoreMessage(jm.Subject, jm.MessageID, props, tags), nil
}

// attrString turns one JSON attribute value into the string QMQ puts on
// the wire; ok is false for null.
func attrString(raw json.RawMessage) (v string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, err
		}
		return v, true, nil
	case 'n':
		return "", false, nil
	case 't', 'f':
		return string(raw), true, nil
	case '{', '[':
		return "", false, fmt.Errorf("is a JSON %s; QMQ properties are strings, numbers or booleans", map[byte]string{'{': "object", '[': "array"}[raw[0]])
	default: // a number, already checked by json.Unmarshal
		return string(raw), true, nil
	}
}

// abbreviate shortens content for an error message.
func abbreviate(content []byte) string {
	const max = 200
	if len(content) <= max {
		return strconv.Quote(string(content))
	}
	return strconv.Quote(string(content[:max])) + fmt.Sprintf("... (%d bytes)", len(content))
}
