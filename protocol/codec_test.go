package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecoderFields(t *testing.T) {
	var b []byte
	b = AppendUint8(b, 0xFE)
	b = AppendInt16(b, -2)
	b = AppendInt32(b, -3)
	b = AppendInt64(b, -4)
	b = AppendString16(b, "héllo")
	b = AppendBytes32(b, []byte{9, 8, 7})
	b = append(b, 1, 2)
	want := []byte{
		0xFE,
		0xFF, 0xFE,
		0xFF, 0xFF, 0xFF, 0xFD,
		0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC,
		0x00, 0x06, 'h', 0xC3, 0xA9, 'l', 'l', 'o',
		0x00, 0x00, 0x00, 0x03, 9, 8, 7,
		1, 2,
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x", b)
	}
	d := NewDecoder(b)
	if d.Uint8() != 0xFE || d.Int16() != -2 || d.Int32() != -3 || d.Int64() != -4 {
		t.Fatal("integers")
	}
	if s := d.String16(); s != "héllo" {
		t.Fatalf("string %q", s)
	}
	bs := d.Bytes32()
	if !bytes.Equal(bs, []byte{9, 8, 7}) || cap(bs) != 3 {
		t.Fatalf("bytes %v cap %d", bs, cap(bs))
	}
	if d.Remaining() != 2 || d.Offset() != len(b)-2 {
		t.Fatalf("remaining %d offset %d", d.Remaining(), d.Offset())
	}
	if r := d.Raw(2); !bytes.Equal(r, []byte{1, 2}) || d.Err() != nil || d.Remaining() != 0 {
		t.Fatal("raw")
	}
}

func TestDecoderErrors(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		read func(d *Decoder)
		want string
	}{
		{"short string length", append(make([]byte, 17), 0x00), func(d *Decoder) { d.Raw(17); d.String16() },
			"need 2 bytes for string length at offset 17, have 1"},
		{"short string", []byte{0, 5, 'a', 'b'}, func(d *Decoder) { d.String16() },
			"need 5 bytes for string at offset 2, have 2"},
		{"negative string", []byte{0, 0, 0xFF, 0xFF}, func(d *Decoder) { d.Int16(); d.String16() },
			"negative string length -1 at offset 2"},
		{"negative bytes", []byte{0x80, 0, 0, 0}, func(d *Decoder) { d.Bytes32() },
			"negative byte-array length -2147483648 at offset 0"},
		{"huge bytes", []byte{0x7F, 0xFF, 0xFF, 0xFF, 1}, func(d *Decoder) { d.Bytes32() },
			"need 2147483647 bytes for byte array at offset 4, have 1"},
		{"int64", []byte{1, 2, 3}, func(d *Decoder) { d.Int64() }, "need 8 bytes for int64 at offset 0, have 3"},
		{"int32", nil, func(d *Decoder) { d.Int32() }, "need 4 bytes for int32 at offset 0, have 0"},
		{"uint8", nil, func(d *Decoder) { d.Uint8() }, "need 1 bytes for uint8 at offset 0, have 0"},
		{"raw negative", []byte{1}, func(d *Decoder) { d.Raw(-1) }, "negative length -1 for raw bytes at offset 0"},
		{"failf", []byte{1}, func(d *Decoder) { d.Uint8(); d.Failf("custom %d", 7) }, "custom 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(c.data)
			c.read(d)
			if d.Err() == nil || d.Err().Error() != c.want {
				t.Fatalf("error %v, want %q", d.Err(), c.want)
			}
			var de *DecodeError
			if !errors.As(d.Err(), &de) {
				t.Fatalf("error is %T", d.Err())
			}
			// The first error sticks and later reads are zero.
			first := d.Err()
			if d.Int64() != 0 || d.String16() != "" || d.Bytes32() != nil || d.Remaining() != 0 {
				t.Fatal("reads after an error must return zero values")
			}
			d.Failf("second")
			if d.Err() != first {
				t.Fatal("first error must stick")
			}
		})
	}
}

func TestAppendString16Clips(t *testing.T) {
	long := strings.Repeat("a", MaxString16Len-1) + "é" + "tail" // é straddles the limit
	b := AppendString16(nil, long)
	d := NewDecoder(b)
	s := d.String16()
	if d.Err() != nil {
		t.Fatal(d.Err())
	}
	if len(s) != MaxString16Len-1 || !utf8.ValidString(s) {
		t.Fatalf("clipped to %d bytes, valid=%v", len(s), utf8.ValidString(s))
	}
	if err := ValidateString16("subject", long); err == nil ||
		err.Error() != "subject is 32772 bytes long; QMQ strings carry an int16 length and are limited to 32767 bytes" {
		t.Fatalf("ValidateString16: %v", err)
	}
	if err := ValidateString16("subject", long[:MaxString16Len]); err != nil {
		t.Fatal(err)
	}
}

func TestErrorBody(t *testing.T) {
	b := AppendErrorBody(nil, "cannot find broker meta for host:20881")
	want := append([]byte{0, 38}, "cannot find broker meta for host:20881"...)
	if !bytes.Equal(b, want) {
		t.Fatalf("% x", b)
	}
	if got := DecodeErrorBody(b); got != "cannot find broker meta for host:20881" {
		t.Fatalf("%q", got)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 9, 'x'}, {0xFF, 0xFF}} {
		if got := DecodeErrorBody(bad); got != "" {
			t.Fatalf("DecodeErrorBody(% x) = %q", bad, got)
		}
	}
}
