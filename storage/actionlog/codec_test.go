package actionlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

func samplePull() Action {
	return Action{Type: Pull, Subject: "order.created", Group: "billing", ConsumerID: "host-1@4242",
		Timestamp: 1_700_000_000_123, FirstPullSeq: 10, LastPullSeq: 14, FirstMsgSeq: 1000, LastMsgSeq: 1004}
}

func randomAction(r *rand.Rand) Action {
	str := func() string {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	a := Action{Type: Type(r.IntN(4)), Subject: str(), Group: str(), ConsumerID: str(), Timestamp: r.Int64(),
		Broadcast: r.IntN(2) == 0, FirstPullSeq: r.Int64(), LastPullSeq: r.Int64(), FirstMsgSeq: r.Int64(), LastMsgSeq: r.Int64()}
	return a.normalized()
}

// TestGoldenPullRecord pins the byte layout, so a change to the format shows
// up here rather than as unreadable logs.
func TestGoldenPullRecord(t *testing.T) {
	a := Action{Type: Pull, Subject: "s", Group: "g", ConsumerID: "c", Timestamp: 2, Broadcast: true,
		FirstPullSeq: 3, LastPullSeq: 4, FirstMsgSeq: 5, LastMsgSeq: 6}
	got, err := AppendEncoded(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte{0, 1, 's', 0, 1, 'g', 0, 1, 'c', 0, 0, 0, 0, 0, 0, 0, 2, 1,
		0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6}
	want := append([]byte{0xC3, 0xB2, 0xA1, 0x00, 0, 0, 0, 0, 0, byte(len(payload))}, payload...)
	want = binary.BigEndian.AppendUint32(want, 0x00000000)
	binary.BigEndian.PutUint32(want[len(want)-4:], crcOf(payload))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %x\nwant %x", got, want)
	}
	if n, _ := EncodedSize(a); n != len(want) {
		t.Fatalf("EncodedSize = %d, want %d", n, len(want))
	}
}

// TestGoldenResetRecord pins RESET (ours): the broadcast byte and the last
// message sequence, -1 meaning "from the subject's first message".
func TestGoldenResetRecord(t *testing.T) {
	a := Action{Type: Reset, Subject: "s", Group: "g", ConsumerID: "c", Timestamp: 2, Broadcast: true, LastMsgSeq: -1}
	got, err := AppendEncoded(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte{0, 1, 's', 0, 1, 'g', 0, 1, 'c', 0, 0, 0, 0, 0, 0, 0, 2, 1,
		0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	want := append([]byte{0xC3, 0xB2, 0xA1, 0x00, 0, 3, 0, 0, 0, byte(len(payload))}, payload...)
	want = binary.BigEndian.AppendUint32(want, crcOf(payload))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding\n got %x\nwant %x", got, want)
	}
	back, rt, n, err := DecodeAction(got)
	if err != nil || rt != RecordAction || n != len(want) || back != a {
		t.Fatalf("decode: %+v %d %d %v", back, rt, n, err)
	}
}

func crcOf(p []byte) uint32 { return crc32.ChecksumIEEE(p) }

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	var want []Action
	for range 2000 {
		a := randomAction(r)
		var err error
		if buf, err = AppendEncoded(buf, a); err != nil {
			t.Fatal(err)
		}
		want = append(want, a)
	}
	for i, w := range want {
		a, rt, n, err := DecodeAction(buf)
		if err != nil || rt != RecordAction {
			t.Fatalf("record %d: rt %d err %v", i, rt, err)
		}
		if a != w {
			t.Fatalf("record %d: got %+v want %+v", i, a, w)
		}
		if sz, _ := EncodedSize(w); sz != n {
			t.Fatalf("record %d: n %d, EncodedSize %d", i, n, sz)
		}
		buf = buf[n:]
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left over", len(buf))
	}
}

func TestEncodeRejectsLongStrings(t *testing.T) {
	a := samplePull()
	a.Group = strings.Repeat("x", MaxStringLen+1)
	if _, err := AppendEncoded(nil, a); !errors.Is(err, ErrInvalidAction) {
		t.Fatalf("err = %v, want ErrInvalidAction", err)
	}
	a.Group = strings.Repeat("x", MaxStringLen)
	a.Subject, a.ConsumerID = a.Group, a.Group
	b, err := AppendEncoded(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxRecordSize {
		t.Fatalf("largest record is %d bytes, MaxRecordSize %d", len(b), MaxRecordSize)
	}
	if got, _, _, err := DecodeAction(b); err != nil || got != a {
		t.Fatalf("decode of largest record: %v", err)
	}
	if _, err := AppendEncoded(nil, Action{Type: Reset + 1}); !errors.Is(err, ErrInvalidAction) {
		t.Fatalf("unknown type: err = %v", err)
	}
}

func TestDecodeFillerAndBlank(t *testing.T) {
	eof := make([]byte, 64)
	binary.BigEndian.PutUint32(eof, Magic)
	eof[4] = byte(RecordEOF)
	if _, rt, n, err := DecodeAction(eof); err != nil || rt != RecordEOF || n != len(eof) {
		t.Fatalf("EOF filler: rt %d n %d err %v", rt, n, err)
	}
	blank := make([]byte, 40)
	binary.BigEndian.PutUint32(blank, Magic)
	blank[4] = byte(RecordBlank)
	binary.BigEndian.PutUint32(blank[5:], 20)
	if _, rt, n, err := DecodeAction(blank); err != nil || rt != RecordBlank || n != 29 {
		t.Fatalf("blank: rt %d n %d err %v", rt, n, err)
	}
	binary.BigEndian.PutUint32(blank[5:], 32)
	if _, _, _, err := DecodeAction(blank); !errors.Is(err, ErrTruncated) {
		t.Fatalf("blank past the end: err %v", err)
	}
}

// TestDecodeDamage: every prefix of a record is ErrTruncated, every single
// bit flip is rejected (the CRC or the header checks catch it), and zeros are
// ErrCorrupt.
func TestDecodeDamage(t *testing.T) {
	rec, _ := AppendEncoded(nil, samplePull())
	for i := range len(rec) {
		if _, _, _, err := DecodeAction(rec[:i]); !errors.Is(err, ErrTruncated) && !(i >= MinFillerSize && errors.Is(err, ErrCorrupt)) {
			t.Fatalf("prefix %d: err %v", i, err)
		}
	}
	for bit := range len(rec) * 8 {
		b := bytes.Clone(rec)
		b[bit/8] ^= 1 << (bit % 8)
		a, rt, n, err := DecodeAction(b)
		if err == nil && rt == RecordAction && a == samplePull() && n == len(rec) {
			t.Fatalf("bit %d flipped and the record still decodes unchanged", bit)
		}
		if err == nil && rt == RecordAction {
			t.Fatalf("bit %d flipped: decoded %+v", bit, a)
		}
	}
	if _, _, _, err := DecodeAction(make([]byte, 100)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zeros: err %v", err)
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	rec, _ := AppendEncoded(nil, samplePull())
	a, _, _, _ := DecodeAction(rec)
	for i := range rec {
		rec[i] = 0
	}
	if a != samplePull() {
		t.Fatalf("decoded strings alias the input: %+v", a)
	}
}

// heapAllocated is exact (ReadMemStats flushes the per-P caches).
func heapAllocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func FuzzDecodeAction(f *testing.F) {
	pull, _ := AppendEncoded(nil, samplePull())
	f.Add(pull)
	ack, _ := AppendEncoded(nil, Action{Type: RangeAck, Subject: "a", Group: "b", ConsumerID: "c", Timestamp: 9, FirstPullSeq: 1, LastPullSeq: 3})
	f.Add(ack)
	off, _ := AppendEncoded(nil, Action{Type: ForeverOffline, Subject: "a", Group: "b", ConsumerID: "c", Timestamp: 9})
	f.Add(off)
	reset, _ := AppendEncoded(nil, Action{Type: Reset, Subject: "a", Group: "b", ConsumerID: "c", Timestamp: 9, LastMsgSeq: 41})
	f.Add(reset)
	f.Add(append(bytes.Clone(pull), ack...))
	f.Add([]byte{0xC3, 0xB2, 0xA1, 0x00, 1, 0, 0, 0})
	f.Add([]byte{0xC3, 0xB2, 0xA1, 0x00, 2, 0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xC3, 0xB2, 0xA1, 0x00, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, data []byte) {
		before := heapAllocated()
		a, rt, n, err := DecodeAction(data)
		// The only allocations are the three strings (copies of input bytes)
		// and a small error; the fuzz engine allocates concurrently, hence
		// the fixed slack.
		if got := heapAllocated() - before; got > uint64(2*len(data)+64<<10) {
			t.Fatalf("allocated %d bytes decoding %d", got, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("n = %d for %d bytes", n, len(data))
		}
		if rt != RecordAction {
			return
		}
		// An accepted action record is canonical: re-encoding reproduces it.
		again, err := AppendEncoded(nil, a)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", a, err)
		}
		if !bytes.Equal(again, data[:n]) {
			t.Fatalf("re-encoding differs\n got %x\nwant %x", again, data[:n])
		}
	})
}
