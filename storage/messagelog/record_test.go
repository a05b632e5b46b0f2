package messagelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand"
	"testing"
)

func encodeForTest(ts, seq int64, subject string, payload []byte) []byte {
	b := make([]byte, recordSize(len(subject), len(payload)))
	encodeRecord(b, ts, seq, subject, crc32.ChecksumIEEE(payload), payload)
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		subject := string(bytes.Repeat([]byte{'a' + byte(i%26)}, 1+rng.Intn(300)))
		payload := make([]byte, 1+rng.Intn(5000))
		rng.Read(payload)
		ts, seq := rng.Int63(), rng.Int63()
		b := encodeForTest(ts, seq, subject, payload)
		b = append(b, 0xAB, 0xCD) // trailing bytes are not part of the record
		rec, n, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(b)-2 || int(rec.Size) != n || int(rec.HeaderSize) != n-len(payload) ||
			rec.Attr != AttrMessage || rec.Timestamp != ts || rec.Sequence != seq ||
			string(rec.Subject) != subject || !bytes.Equal(rec.Payload, payload) || !rec.CheckCRC() {
			t.Fatalf("round trip mismatch: %+v", rec)
		}
	}
}

func TestDecodeSpecialRecords(t *testing.T) {
	eof := make([]byte, 100)
	fillEOF(func() int64 { return 42 })(eof)
	rec, n, err := DecodeRecord(eof)
	if err != nil || rec.Attr != AttrEOF || n != MinRecordSize || rec.Timestamp != 42 {
		t.Fatalf("EOF: %+v %d %v", rec, n, err)
	}
	short := make([]byte, 12)
	fillEOF(func() int64 { return 42 })(short)
	if !bytes.Equal(short, make([]byte, 12)) {
		t.Fatal("filler wrote into a tail too short for an EOF record")
	}

	blank := make([]byte, 40)
	binary.BigEndian.PutUint32(blank, Magic)
	blank[4] = AttrBlank
	binary.BigEndian.PutUint32(blank[13:], 30)
	rec, n, err = DecodeRecord(blank)
	if err != nil || rec.Attr != AttrBlank || n != 30 {
		t.Fatalf("blank: %+v %d %v", rec, n, err)
	}
	binary.BigEndian.PutUint32(blank[13:], 50)
	if _, _, err := DecodeRecord(blank); !errors.Is(err, ErrShort) {
		t.Fatalf("blank beyond buffer: %v", err)
	}
	binary.BigEndian.PutUint32(blank[13:], 3)
	if _, _, err := DecodeRecord(blank); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("blank too small: %v", err)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	payload := bytes.Repeat([]byte("payload!"), 100)
	good := encodeForTest(1700000000000, 7, "order.changed", payload)
	set := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	subjEnd := 23 + len("order.changed")
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"magic":        {set(func(b []byte) { b[0] ^= 1 }), ErrBadMagic},
		"attr":         {set(func(b []byte) { b[4] = 3 }), ErrBadAttr},
		"negative seq": {set(func(b []byte) { b[13] = 0x80 }), ErrBadHeader},
		"negative ts":  {set(func(b []byte) { b[5] = 0x80 }), ErrBadHeader},
		"empty subject": {set(func(b []byte) {
			binary.BigEndian.PutUint16(b[21:], 0)
		}), ErrBadHeader},
		"NUL in subject":  {set(func(b []byte) { b[25] = 0 }), ErrBadHeader},
		"crc":             {set(func(b []byte) { b[subjEnd+7] ^= 1 }), ErrBadCRC},
		"crc too wide":    {set(func(b []byte) { b[subjEnd] = 1 }), ErrBadHeader},
		"payload flipped": {set(func(b []byte) { b[len(b)-1] ^= 0x40 }), ErrBadCRC},
		"empty payload": {set(func(b []byte) {
			binary.BigEndian.PutUint32(b[subjEnd+8:], 0)
		}), ErrBadHeader},
		"payload beyond": {set(func(b []byte) {
			binary.BigEndian.PutUint32(b[subjEnd+8:], uint32(len(payload)+1))
		}), ErrShort},
	}
	for name, c := range cases {
		if _, _, err := DecodeRecord(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	// Every truncation fails.
	for i := 0; i < len(good); i++ {
		if _, _, err := DecodeRecord(good[:i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded", i)
		}
	}
}

// TestDecodeDetectsZeroedSectors zeroes every sector-aligned 512-byte window
// of a record at every alignment in a segment, as a power loss can: no
// damaged record may decode.
func TestDecodeDetectsZeroedSectors(t *testing.T) {
	const sector = 512
	subject := string(bytes.Repeat([]byte("s"), 700)) // a header spanning sectors
	payload := bytes.Repeat([]byte{0x5A}, 1500)
	rec := encodeForTest(1700000000000, 12345, subject, payload)
	for shift := 0; shift < sector; shift += 7 {
		for lo := -shift; lo < len(rec); lo += sector {
			b := bytes.Clone(rec)
			clear(b[max(lo, 0):min(lo+sector, len(b))])
			if bytes.Equal(b, rec) {
				continue
			}
			if _, _, err := DecodeRecord(b); err == nil {
				t.Fatalf("record with sector [%d,%d) zeroed decoded", lo, lo+sector)
			}
		}
	}
}
