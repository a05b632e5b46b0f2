package protocol

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// goldenTaggedMessage is one message with tags, written out by hand from the
// reference layout. The CRC was computed independently (Python zlib.crc32
// over the 71 payload bytes).
var goldenTaggedMessage = []byte{
	0x00, 0x00, 0x00, 0x00, 0x19, 0x62, 0x46, 0x9D, // crc i64 = 0x1962469D
	0x04,                                           // flag: has tags
	0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, // createTime 1700000000000
	0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x7B, 0x88, // expire 1700000005000
	0x00, 0x0D, 'o', 'r', 'd', 'e', 'r', '.', 'c', 'r', 'e', 'a', 't', 'e', 'd',
	0x00, 0x05, 'm', 's', 'g', '-', '1',
	0x02, // tag count
	0x00, 0x03, 'v', 'i', 'p',
	0x00, 0x02, 'c', 'n',
	0x00, 0x00, 0x00, 0x12, // body length 18
	0x00, 0x01, 'k', 0x00, 0x01, 'v',
	0x00, 0x06, 'a', 'm', 'o', 'u', 'n', 't', 0x00, 0x02, '4', '2',
}

var goldenTaggedStruct = Message{
	Flag:                 MessageFlagTags,
	CreateTime:           1700000000000,
	ExpireOrScheduleTime: 1700000005000,
	Subject:              "order.created",
	MessageID:            "msg-1",
	Tags:                 []string{"vip", "cn"},
	Attrs:                []Attr{{"k", "v"}, {"amount", "42"}},
}

// goldenPlainMessage: no tags, no attributes (CRC 0xFB16D828, computed independently).
var goldenPlainMessage = []byte{
	0x00, 0x00, 0x00, 0x00, 0xFB, 0x16, 0xD8, 0x28,
	0x00,
	0, 0, 0, 0, 0, 0, 0, 1,
	0, 0, 0, 0, 0, 0, 0, 2,
	0x00, 0x01, 's',
	0x00, 0x02, 'i', 'd',
	0x00, 0x00, 0x00, 0x00,
}

func TestGoldenMessageEncode(t *testing.T) {
	m := goldenTaggedStruct
	m.Flag = 0 // the tags bit is implied by Tags
	got, err := AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, goldenTaggedMessage) {
		t.Fatalf("encoded\n got % x\nwant % x", got, goldenTaggedMessage)
	}
	got, err = AppendMessage([]byte{0xAA}, &Message{CreateTime: 1, ExpireOrScheduleTime: 2, Subject: "s", MessageID: "id"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte{0xAA}, goldenPlainMessage...)) {
		t.Fatalf("plain message\n got % x", got)
	}
}

func TestGoldenMessageDecode(t *testing.T) {
	body := append(bytes.Clone(goldenTaggedMessage), goldenPlainMessage...)
	for _, version := range []int16{Version7, Version8, Version9} {
		msgs, err := DecodeMessages(body, version, 0)
		if err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		if len(msgs) != 2 {
			t.Fatalf("got %d messages", len(msgs))
		}
		if msgs[0].CRC != 0x1962469D || !bytes.Equal(msgs[0].Payload, goldenTaggedMessage[8:]) || msgs[0].Size() != len(goldenTaggedMessage) {
			t.Fatalf("raw: crc %x payload % x", msgs[0].CRC, msgs[0].Payload)
		}
		if !reflect.DeepEqual(msgs[0].Message, goldenTaggedStruct) {
			t.Fatalf("decoded %+v", msgs[0].Message)
		}
		want := Message{CreateTime: 1, ExpireOrScheduleTime: 2, Subject: "s", MessageID: "id"}
		if !reflect.DeepEqual(msgs[1].Message, want) || msgs[1].CRC != 0xFB16D828 {
			t.Fatalf("plain: %+v", msgs[1])
		}
	}
	if msgs, err := DecodeMessages(nil, Version9, 0); err != nil || len(msgs) != 0 {
		t.Fatalf("empty body: %v %v", msgs, err)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	ms := []Message{
		{Flag: MessageFlagDelay | MessageFlagUnreliable, CreateTime: -1, ExpireOrScheduleTime: 1 << 62, Subject: "a", MessageID: ""},
		{Flag: MessageFlagTags, Subject: "tags-bit-no-tags", Tags: []string{}},
		{Flag: MessageFlagTags, Subject: "x", MessageID: "y", Tags: []string{"", "t"}, Attrs: []Attr{{"", ""}, {"big", strings.Repeat("v", MaxString16Len)}}},
	}
	var body []byte
	for i := range ms {
		var err error
		if body, err = AppendMessage(body, &ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DecodeMessages(body, Version9, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		if !reflect.DeepEqual(got[i].Message, ms[i]) {
			t.Fatalf("message %d did not round-trip (flag %d tags %q, %d attrs)", i, got[i].Message.Flag, got[i].Message.Tags, len(got[i].Message.Attrs))
		}
	}
}

func TestAppendMessageValidation(t *testing.T) {
	cases := []struct {
		m    Message
		want string
	}{
		{Message{MessageID: "m", Tags: make([]string, 11)}, `message "m" has 11 tags; QMQ allows at most 10`},
		{Message{Subject: strings.Repeat("s", 40000)}, "subject is 40000 bytes long"},
		{Message{MessageID: strings.Repeat("s", 40000)}, "messageId is 40000 bytes long"},
		{Message{MessageID: "m", Tags: []string{strings.Repeat("t", 40000)}}, `tag #0 of message "m" is 40000 bytes long`},
		{Message{MessageID: "m", Attrs: []Attr{{strings.Repeat("k", 40000), ""}}}, `attribute key of message "m" is 40000 bytes long`},
		{Message{MessageID: "m", Attrs: []Attr{{"k", strings.Repeat("v", 40000)}}}, `attribute "k" of message "m" is 40000 bytes long`},
	}
	for _, c := range cases {
		dst := []byte{1, 2}
		got, err := AppendMessage(dst, &c.m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
		if !bytes.Equal(got, []byte{1, 2}) {
			t.Errorf("dst modified on error")
		}
	}
}

// fixCRC recomputes the CRC of a single hand-modified message.
func fixCRC(msg []byte) []byte {
	binary.BigEndian.PutUint64(msg, uint64(crc32.ChecksumIEEE(msg[8:])))
	return msg
}

func TestDecodeMessagesErrors(t *testing.T) {
	mod := func(off int, b ...byte) []byte {
		c := bytes.Clone(goldenTaggedMessage)
		copy(c[off:], b)
		return c
	}
	const tagCountOff = 8 + 1 + 8 + 8 + 15 + 7
	const bodyLenOff = tagCountOff + 1 + 5 + 4
	cases := []struct {
		name string
		body []byte
		max  int
		want string
	}{
		{"crc mismatch", mod(7, 0x9E), 0,
			`SEND_MESSAGE message #0 (starting at body offset 0): message "msg-1": CRC mismatch: sender says 0x1962469E, payload hashes to 0x1962469D`},
		{"oversize", goldenTaggedMessage, 78,
			`message "msg-1" is 79 bytes, over the 78-byte message size limit`},
		{"second message oversize", append(bytes.Clone(goldenPlainMessage), goldenTaggedMessage...), 78,
			`message #1 (starting at body offset 36): message "msg-1" is 79 bytes`},
		{"negative body length", fixCRC(mod(bodyLenOff, 0xFF, 0xFF, 0xFF, 0xFF)), 0,
			`message "msg-1": negative body length -1`},
		{"body length past end", fixCRC(mod(bodyLenOff, 0, 0, 0, 0x13)), 0,
			`message "msg-1": body length 19 runs past the end of the request: need 19 bytes for raw bytes at offset 61, have 18`},
		{"huge declared body vs limit", mod(bodyLenOff, 0x7F, 0, 0, 0), 1 << 20,
			`message "msg-1" is 2130706493 bytes, over the 1048576-byte message size limit`},
		{"tag count over 127", fixCRC(mod(tagCountOff, 200)), 0,
			`message "msg-1": tag count 200 is over 127`},
		{"tag count beyond data", fixCRC(mod(tagCountOff, 100)), 0,
			`message "msg-1": tag count 100 needs at least 200 bytes, have 31`},
		{"negative subject length", mod(25, 0xFF, 0xF0), 0,
			"negative string length -16 at offset 25"},
		{"truncated header", goldenTaggedMessage[:20], 0,
			"need 8 bytes for int64 at offset 17, have 3"},
		{"trailing garbage", append(bytes.Clone(goldenPlainMessage), 1, 2, 3), 0,
			"message #1 (starting at body offset 36): need 8 bytes for int64 at offset 36, have 3"},
		{"odd attributes", fixCRC(append(mod(bodyLenOff, 0, 0, 0, 0x13), 0x00)), 0,
			`message "msg-1": malformed attributes: need 2 bytes for string length at offset 18, have 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs, err := DecodeMessages(c.body, Version9, c.max)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, c.want)
			}
			if msgs != nil {
				t.Fatal("messages returned with an error")
			}
		})
	}
}

// Java producers write attribute values of 32768..65535 bytes with a
// "negative" i16 length; Java consumers add 65536. We accept them too.
func TestDecodeMessagesLongAttributeValue(t *testing.T) {
	value := strings.Repeat("v", 40000)
	var attrs []byte
	attrs = AppendString16(attrs, "k")
	attrs = AppendInt16(attrs, int16(-25536)) // (short) 40000
	attrs = append(attrs, value...)
	msg := make([]byte, 8)
	msg = append(msg, 0)
	msg = AppendInt64(msg, 1)
	msg = AppendInt64(msg, 2)
	msg = AppendString16(msg, "s")
	msg = AppendString16(msg, "id")
	msg = AppendBytes32(msg, attrs)
	fixCRC(msg)
	msgs, err := DecodeMessages(msg, Version9, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].Message.Attrs; len(got) != 1 || got[0].Key != "k" || got[0].Value != value {
		t.Fatalf("attrs %d", len(got))
	}
}

func TestSendResults(t *testing.T) {
	rs := []SendResult{
		{MessageID: "m1", Code: SendBrokerBusy, Remark: "busy"},
		{MessageID: "m2", Code: SendSubjectNotAssigned},
	}
	golden := []byte{
		0x00, 0x02, 'm', '1', 0x00, 0x00, 0x00, 0x01, 0x00, 0x04, 'b', 'u', 's', 'y',
		0x00, 0x02, 'm', '2', 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
	}
	b := AppendSendResults(nil, rs)
	if !bytes.Equal(b, golden) {
		t.Fatalf("% x", b)
	}
	got, err := DecodeSendResults(golden)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := DecodeSendResults(nil); err != nil || got != nil {
		t.Fatalf("empty body: %v %v", got, err)
	}
	_, err = DecodeSendResults(golden[:len(golden)-1])
	if err == nil || err.Error() != "decode SEND_MESSAGE response: need 2 bytes for string length at offset 22, have 1" {
		t.Fatalf("truncated: %v", err)
	}
}

// TestAppendMessageAllocatesOnce checks the size AppendMessage reserves is
// exactly what it writes, so encoding a message costs one allocation.
func TestAppendMessageAllocatesOnce(t *testing.T) {
	m := &Message{Subject: "order.changed", MessageID: "261121.160700.10.0.0.1.42.7", CreateTime: 1, ExpireOrScheduleTime: 2,
		Tags: []string{"a", "bb"}, Attrs: []Attr{{Key: "qmq_appCode", Value: "app"}, {Key: "body", Value: strings.Repeat("x", 1000)}}}
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != encodedMessageSize(m) {
		t.Fatalf("encodedMessageSize = %d, AppendMessage wrote %d", encodedMessageSize(m), len(b))
	}
	allocs := testing.AllocsPerRun(100, func() { _, _ = AppendMessage(nil, m) })
	if allocs > 1 && !raceEnabled {
		t.Fatalf("AppendMessage allocated %v times, want 1", allocs)
	}
}

// TestDecodeMessageHeadersMatchesFull: the broker's header-only decode
// accepts and refuses exactly what the full decode does, and agrees on the
// header fields and payloads.
func TestDecodeMessageHeadersMatchesFull(t *testing.T) {
	m := &Message{Subject: "order.changed", MessageID: "id-1", CreateTime: 5, ExpireOrScheduleTime: 6, Flag: MessageFlagUnreliable,
		Tags: []string{"t"}, Attrs: []Attr{{Key: "k", Value: "v"}}}
	good, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	good, _ = AppendMessage(good, &Message{Subject: "s2", MessageID: "id-2"})
	full, err := DecodeMessages(good, CurrentVersion, 0)
	if err != nil {
		t.Fatal(err)
	}
	heads, err := DecodeMessageHeaders(good, CurrentVersion, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range full {
		f, h := full[i], heads[i]
		if !bytes.Equal(f.Payload, h.Payload) || f.CRC != h.CRC || f.Message.Subject != h.Message.Subject ||
			f.Message.MessageID != h.Message.MessageID || f.Message.Flag != h.Message.Flag || f.Message.CreateTime != h.Message.CreateTime {
			t.Fatalf("message %d: full %+v, headers %+v", i, f, h)
		}
	}
	// An attribute whose value length runs past the attributes, with a valid
	// CRC: only the attribute check can catch it.
	one, _ := AppendMessage(nil, m)
	bad := slices.Clone(one)
	binary.BigEndian.PutUint16(bad[len(bad)-3:], 0x7000) // value length of the last attribute ("v")
	binary.BigEndian.PutUint64(bad, uint64(crc32.ChecksumIEEE(bad[8:])))
	for _, b := range [][]byte{bad, good[:len(good)-1]} {
		_, errFull := DecodeMessages(b, CurrentVersion, 0)
		_, errHead := DecodeMessageHeaders(b, CurrentVersion, 0)
		if errFull == nil {
			t.Fatal("the full decode accepted a malformed message; the test input is wrong")
		}
		if (errFull == nil) != (errHead == nil) {
			t.Fatalf("full decode error %v, header decode error %v: they must agree", errFull, errHead)
		}
	}
}
