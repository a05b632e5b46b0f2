package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Wire is each message exactly as sent (CRC then payload), so a server can
// store it without copying it first.
func TestRawMessageWireIsTheSentBytes(t *testing.T) {
	var body []byte
	var each [][]byte
	for _, id := range []string{"m1", "m2"} {
		before := len(body)
		var err error
		body, err = AppendMessage(body, &Message{Subject: "s", MessageID: id, CreateTime: 1, ExpireOrScheduleTime: 2,
			Attrs: []Attr{{Key: "k", Value: id}}})
		if err != nil {
			t.Fatal(err)
		}
		each = append(each, append([]byte(nil), body[before:]...))
	}
	msgs, err := DecodeMessages(body, 9, 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("decode: %v (%d messages)", err, len(msgs))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Wire, each[i]) || int64(binary.BigEndian.Uint64(m.Wire)) != m.CRC || !bytes.Equal(m.Wire[8:], m.Payload) {
			t.Errorf("message %d: Wire %x, sent %x", i, m.Wire, each[i])
		}
	}
}
