package messagelog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

const fuzzSegSize = 2048

// seedLog returns the bytes of a small valid log (two segments' worth).
func seedLog() []byte {
	b := make([]byte, 0, 2*fuzzSegSize)
	seg := make([]byte, fuzzSegSize)
	pos := 0
	for i := 0; i < 40; i++ {
		subject := []string{"a", "order.changed", "pay"}[i%3]
		payload := bytes.Repeat([]byte{byte(i + 1)}, 20+i*13)
		n := recordSize(len(subject), len(payload))
		if pos+n > fuzzSegSize {
			fillEOF(func() int64 { return 1 })(seg[pos:])
			b = append(b, seg...)
			if len(b) >= 2*fuzzSegSize {
				break
			}
			seg, pos = make([]byte, fuzzSegSize), 0
		}
		encodeRecord(seg[pos:], 1700000000000, int64(i/3), subject, crc32.ChecksumIEEE(payload), payload)
		pos += n
	}
	if len(b) < 2*fuzzSegSize {
		b = append(b, seg...)
	}
	return b
}

// FuzzDecodeRecord: DecodeRecord never panics, and what it accepts is
// consistent and re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeForTest(1, 2, "subject", []byte("payload")))
	f.Add(seedLog()[:200])
	eof := make([]byte, 20)
	fillEOF(func() int64 { return 5 })(eof)
	f.Add(eof)
	blank := make([]byte, 30)
	binary.BigEndian.PutUint32(blank, Magic)
	blank[4] = AttrBlank
	binary.BigEndian.PutUint32(blank[13:], 25)
	f.Add(blank)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeRecord(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			return
		}
		if n < MinRecordSize || n > len(b) || int(rec.Size) != n {
			t.Fatalf("n=%d size=%d len=%d", n, rec.Size, len(b))
		}
		if rec.Attr != AttrMessage {
			return
		}
		if !rec.CheckCRC() || int64(crc32.ChecksumIEEE(rec.Payload)) != rec.PayloadCRC {
			t.Fatal("accepted a record failing its CRC")
		}
		if int(rec.HeaderSize)+len(rec.Payload) != n || len(rec.Subject) == 0 || len(rec.Payload) == 0 {
			t.Fatalf("inconsistent record %+v", rec)
		}
		again := encodeForTest(rec.Timestamp, rec.Sequence, string(rec.Subject), rec.Payload)
		if !bytes.Equal(again, b[:n]) {
			t.Fatal("accepted bytes do not re-encode identically")
		}
	})
}

// FuzzRecoveryScan writes arbitrary bytes as one or two segment files, opens
// the log (recovery) and iterates it: no panic, no record failing its CRC,
// no invalid record below the recovered write position, and appends after
// recovery continue every subject's sequence.
func FuzzRecoveryScan(f *testing.F) {
	valid := seedLog()
	f.Add(valid)
	f.Add(valid[:fuzzSegSize+700])
	torn := bytes.Clone(valid)
	clear(torn[900:1400])
	f.Add(torn)
	flipped := bytes.Clone(valid)
	flipped[fuzzSegSize+100] ^= 0xFF
	f.Add(flipped)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xA1, 0xB2, 0xC3, 0x02}, 600))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2*fuzzSegSize {
			data = data[:2*fuzzSegSize]
		}
		dir := memTempDir(t)
		for base := 0; base < len(data) || base == 0; base += fuzzSegSize {
			seg := make([]byte, fuzzSegSize)
			copy(seg, data[base:min(base+fuzzSegSize, len(data))])
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d", base)), seg, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Open(Config{Dir: dir, SegmentSize: fuzzSegSize}, Start{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		next := map[string]int64{}
		it := l.Iterate(0)
		for {
			rec, ok := it.Next()
			if !ok {
				break
			}
			if int64(crc32.ChecksumIEEE(rec.Payload)) != rec.PayloadCRC {
				t.Fatalf("served a record failing its CRC at %d", rec.Offset)
			}
			r2, err := l.Read(rec.Offset, rec.Size)
			if err != nil || r2.Sequence != rec.Sequence || !bytes.Equal(r2.Payload, rec.Payload) {
				t.Fatalf("Read disagrees with Iterate at %d: %v", rec.Offset, err)
			}
			r2.Release()
			s := string(rec.Subject)
			next[s] = max(next[s], rec.Sequence+1)
		}
		it.Close()
		if it.Err() != nil {
			t.Fatalf("recovered log has an invalid record: %v", it.Err())
		}
		if it.Offset() != l.WrotePosition() {
			t.Fatalf("iteration ended at %d, write position %d", it.Offset(), l.WrotePosition())
		}
		for s, n := range next {
			if got := l.NextSequence(s); got != n {
				t.Fatalf("NextSequence(%q) = %d, want %d", s, got, n)
			}
		}
		out, err := l.Append(context.Background(), []Message{{Subject: "after", Payload: []byte("recovery")}})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := l.Read(out[0].Offset, out[0].Size)
		if err != nil || string(rec.Payload) != "recovery" || rec.Sequence != next["after"] {
			t.Fatalf("append after recovery: %v", err)
		}
		rec.Release()
	})
}
