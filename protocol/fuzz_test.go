package protocol

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"testing"
)

// Fuzz invariants, for every decoder:
//   - it never panics (any panic fails the target);
//   - on success, re-encoding reproduces the input (byte-exact where the
//     format allows, otherwise decode(encode(v)) == v);
//   - it allocates O(len(input)): never in proportion to a length or count
//     read from the input.

// heapAllocated returns the bytes allocated so far. runtime.ReadMemStats
// flushes every P's allocation cache first, so the figure is exact (cheaper
// runtime/metrics counters lag by whole spans and gave false alarms).
func heapAllocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// allocSlack absorbs fixed costs such as ReadFrame's first 64 KiB chunk and
// the fuzzing engine's own bookkeeping.
const allocSlack = 80 << 10

// checkAlloc runs fn and fails if it allocated more than perByte bytes per
// input byte plus allocSlack.
func checkAlloc(t *testing.T, inputLen, perByte int, fn func()) {
	t.Helper()
	before := heapAllocated()
	fn()
	if got, limit := heapAllocated()-before, uint64(allocSlack+perByte*inputLen); got > limit {
		t.Fatalf("allocated %d bytes decoding %d input bytes (limit %d)", got, inputLen, limit)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(goldenAcquireMetaFrame)
	f.Add(AppendFrame(nil, Header{Code: CodeSendMessage, Version: 9, Opaque: 1}, goldenTaggedMessage))
	f.Add(AppendFrame(nil, Header{Code: CodeSuccess, Version: 8, Opaque: -1, Flag: FlagResponse, RequestCode: CodeClientRegister}, goldenClientRegisterResponse))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 25, 0, 20, 0xDE, 0xC1, 0x0A, 0xDE, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 10, 0xAA, 0xBB, 'x', 'y', 'z'})
	f.Add([]byte{0x7F, 0xFF, 0xFF, 0xFF, 0, 18, 0xDE, 0xC1, 0x0A, 0xDE})
	const max = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var fr Frame
		var err error
		checkAlloc(t, len(data), 4, func() { fr, err = ReadFrame(r, max) })
		if err != nil {
			return
		}
		consumed := data[:len(data)-r.Len()]
		if len(fr.Body) > len(consumed) {
			t.Fatalf("body %d bytes from %d consumed", len(fr.Body), len(consumed))
		}
		enc := AppendFrame(nil, fr.Header, fr.Body)
		if binary.BigEndian.Uint16(consumed[4:6]) == HeaderSize && !bytes.Equal(enc, consumed) { // byte-exact unless the header was extended
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc, consumed)
		}
		again, err := ReadFrame(bytes.NewReader(enc), max)
		if err != nil || again.Header != fr.Header || !bytes.Equal(again.Body, fr.Body) {
			t.Fatalf("re-decoding failed: %v", err)
		}
	})
}

func FuzzDecodeMessages(f *testing.F) {
	f.Add(goldenTaggedMessage, int16(9))
	f.Add(append(bytes.Clone(goldenPlainMessage), goldenTaggedMessage...), int16(7))
	f.Add(goldenPlainMessage[:20], int16(8))
	many, _ := AppendMessage(nil, &Message{Flag: MessageFlagTags, Subject: "s", Tags: []string{}, Attrs: []Attr{{"", ""}, {"a", "b"}}})
	f.Add(many, int16(9))
	f.Fuzz(func(t *testing.T, data []byte, version int16) {
		var msgs []RawMessage
		var err error
		checkAlloc(t, len(data), 32, func() { msgs, err = DecodeMessages(data, version, 1<<20) })
		heads, errHeads := DecodeMessageHeaders(data, version, 1<<20)
		if (err == nil) != (errHeads == nil) {
			t.Fatalf("DecodeMessages error %v, DecodeMessageHeaders error %v: the broker's decode must accept exactly the same input", err, errHeads)
		}
		if err != nil {
			return
		}
		for i := range msgs {
			if heads[i].Message.Subject != msgs[i].Message.Subject || heads[i].Message.MessageID != msgs[i].Message.MessageID ||
				heads[i].Message.Flag != msgs[i].Message.Flag || !bytes.Equal(heads[i].Payload, msgs[i].Payload) {
				t.Fatalf("message %d: header decode %+v differs from full decode %+v", i, heads[i], msgs[i])
			}
		}
		var total []byte
		for i := range msgs {
			m := &msgs[i]
			enc, err := AppendMessage(nil, &m.Message)
			if err != nil {
				// Only the documented encode-side limits may refuse a decoded message.
				if len(m.Message.Tags) > MaxTags || hasLongValue(m.Message.Attrs) {
					total = append(total, data[len(total):len(total)+m.Size()]...)
					continue
				}
				t.Fatalf("message %d: decoded but cannot re-encode: %v", i, err)
			}
			if int64(crcOf(enc)) != m.CRC || !bytes.Equal(enc[8:], m.Payload) {
				t.Fatalf("message %d: re-encoding differs:\n got % x\nwant % x", i, enc[8:], m.Payload)
			}
			total = append(total, enc...)
		}
		if !bytes.Equal(total, data) {
			t.Fatal("messages do not cover the body exactly")
		}
	})
}

func crcOf(enc []byte) uint64 { return binary.BigEndian.Uint64(enc) }

func hasLongValue(as []Attr) bool {
	for _, a := range as {
		if len(a.Value) > MaxString16Len {
			return true
		}
	}
	return false
}

func FuzzDecodeSendResults(f *testing.F) {
	f.Add(AppendSendResults(nil, []SendResult{{MessageID: "m1", Code: SendBrokerBusy, Remark: "busy"}, {MessageID: "m2", Code: 3}}))
	f.Add([]byte{0, 2, 'm'})
	f.Add([]byte{0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rs []SendResult
		var err error
		checkAlloc(t, len(data), 32, func() { rs, err = DecodeSendResults(data) })
		if err != nil {
			return
		}
		if enc := AppendSendResults(nil, rs); !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n got % x\nwant % x", enc, data)
		}
	})
}

// fuzzFixed checks a decoder of a fixed layout: on success the re-encoding
// is a prefix of the input (trailing bytes are ignored) and decodes to the
// same value.
func fuzzFixed[T any](t *testing.T, data []byte, decode func([]byte) (T, error), encode func([]byte, *T) []byte, exactPrefix bool) {
	var v T
	var err error
	checkAlloc(t, len(data), 8, func() { v, err = decode(data) })
	if err != nil {
		return
	}
	enc := encode(nil, &v)
	if exactPrefix && !bytes.HasPrefix(data, enc) {
		t.Fatalf("re-encoding is not a prefix of the input:\n got % x\nwant % x", enc, data)
	}
	again, err := decode(enc)
	if err != nil || !reflect.DeepEqual(again, v) {
		t.Fatalf("decode(encode(v)) = %+v, %v; want %+v", again, err, v)
	}
}

func FuzzDecodeBrokerAcquireMetaRequest(f *testing.F) {
	f.Add(goldenAcquireMetaFrame[24:])
	f.Add(AppendBrokerAcquireMetaRequest(nil, &BrokerAcquireMetaRequest{Hostname: "h", Port: 1, SyncPort: 2}))
	f.Add([]byte{0xFF, 0xFF, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeBrokerAcquireMetaRequest, AppendBrokerAcquireMetaRequest, true)
	})
}

func FuzzDecodeBrokerAcquireMetaResponse(f *testing.F) {
	f.Add(goldenAcquireMetaResponse)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeBrokerAcquireMetaResponse, AppendBrokerAcquireMetaResponse, true)
	})
}

func FuzzDecodeBrokerRegisterRequest(f *testing.F) {
	f.Add(goldenBrokerRegister)
	f.Add(goldenBrokerRegister[:10])
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeBrokerRegisterRequest, AppendBrokerRegisterRequest, true)
	})
}

func FuzzDecodeBrokerRegisterResponse(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendBrokerRegisterResponse(nil, &BrokerRegisterResponse{Known: true, ReadonlySubjects: []string{"*", "a.b"}}))
	f.Add([]byte{0x80, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeBrokerRegisterResponse, AppendBrokerRegisterResponse, true)
	})
}

func FuzzDecodeClientRegisterRequest(f *testing.F) {
	f.Add(goldenClientRegister)
	f.Add([]byte{0, 0})
	f.Add([]byte{0x7F, 0xFF, 0, 0, 0, 0})
	f.Add(cat(bs{0, 2}, bs{0, 3}, "env", bs{0, 1}, "x", bs{0, 11}, "requestType", bs{0, 2}, "+7"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The map is unordered and integers are re-rendered, so only
		// decode(encode(v)) == v is required.
		fuzzFixed(t, data, DecodeClientRegisterRequest, AppendClientRegisterRequest, false)
	})
}

func FuzzDecodeClientRegisterResponse(f *testing.F) {
	f.Add(goldenClientRegisterResponse)
	f.Add(goldenClientRegisterResponse[:32])
	f.Add(cat(goldenClientRegisterResponse[:30], bs{0x7F, 0xFF}))
	f.Add(AppendClientRegisterResponse(nil, &ClientRegisterResponse{Subject: "s", Withheld: []WithheldGroup{{Name: "g1", Reason: "read-only"}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeClientRegisterResponse, AppendClientRegisterResponse, true)
	})
}

func FuzzDecodeConsumeManageRequest(f *testing.F) {
	f.Add(goldenConsumeManage)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeConsumeManageRequest, AppendConsumeManageRequest, true)
	})
}
