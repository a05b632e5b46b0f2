package protocol

import (
	"bytes"
	"strconv"
	"testing"
)

// benchMessage is a typical producer message: ~10 attributes, 2 tags, a
// 1 KiB payload attribute.
func benchMessage() *Message {
	m := &Message{
		CreateTime:           1700000000000,
		ExpireOrScheduleTime: 1700000000000,
		Subject:              "order.changed",
		MessageID:            "231121.143052.10.0.0.1.1234.567",
		Tags:                 []string{"vip", "cn"},
	}
	for i := range 9 {
		m.Attrs = append(m.Attrs, Attr{Key: "key" + strconv.Itoa(i), Value: "value-" + strconv.Itoa(i*7919)})
	}
	m.Attrs = append(m.Attrs, Attr{Key: "payload", Value: string(bytes.Repeat([]byte("x"), 1024))})
	return m
}

func BenchmarkAppendMessage(b *testing.B) {
	m := benchMessage()
	buf, _ := AppendMessage(nil, m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMessage(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMessages decodes a SEND_MESSAGE body of 10 messages.
func BenchmarkDecodeMessages(b *testing.B) {
	m := benchMessage()
	var body []byte
	for range 10 {
		body, _ = AppendMessage(body, m)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := DecodeMessages(body, CurrentVersion, 1<<20)
		if err != nil || len(msgs) != 10 {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame(b *testing.B) {
	for _, size := range []int{64, 16 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			frame := AppendFrame(nil, Header{Code: CodeSendMessage, Version: 9, Opaque: 1, RequestCode: CodeSendMessage}, make([]byte, size))
			r := bytes.NewReader(frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(frame)
				if _, err := ReadFrame(r, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	body := make([]byte, 1024)
	b.SetBytes(int64(len(body) + 24))
	b.ReportAllocs()
	var w bytes.Buffer
	for b.Loop() {
		w.Reset()
		if err := WriteFrame(&w, Header{Code: CodeSendMessage, Version: 9}, body); err != nil {
			b.Fatal(err)
		}
	}
}
