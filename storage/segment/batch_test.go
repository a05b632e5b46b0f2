package segment

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// TestAppendBatch: batches crossing segments (filler, roll) and larger than
// one write land where single Appends would, each record told its offset,
// with WriteThrough and through the mapping; reopened, the bytes are there.
func TestAppendBatch(t *testing.T) {
	for _, wt := range []bool{true, false} {
		t.Run(fmt.Sprintf("writeThrough=%v", wt), func(t *testing.T) {
			dir := t.TempDir()
			fill := func(b []byte) {
				for i := range b {
					b[i] = 0xEE
				}
			}
			cfg := Config{FS: vfs.Default(), Dir: dir, SegmentSize: testSegSize, Filler: fill, WriteThrough: wt}
			l, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewSource(1))
			var offs []int64
			var sizes []int
			for round := 0; round < 40; round++ {
				batch := make([]int, 1+rng.Intn(300))
				for i := range batch {
					batch[i] = 8 + rng.Intn(2000)
				}
				if round == 7 { // one batch above maxBatchWrite spread over many segments
					batch = make([]int, maxBatchWrite/testSegSize*3)
					for i := range batch {
						batch[i] = testSegSize / 2
					}
				}
				got := make([]int64, len(batch))
				want := l.WrotePosition()
				n, err := l.AppendBatch(batch, func(i int, off int64, b []byte) {
					if len(b) != batch[i] {
						t.Fatalf("record %d: %d bytes, want %d", i, len(b), batch[i])
					}
					got[i] = off
					fillRecord(b, off)
				})
				if err != nil || n != len(batch) {
					t.Fatalf("AppendBatch: %d of %d, %v", n, len(batch), err)
				}
				// Where single Appends would have put them.
				for i, sz := range batch {
					if end := l.SegmentEnd(want); end >= 0 && want+int64(sz) > end {
						want = end
					}
					if got[i] != want {
						t.Fatalf("round %d record %d at %d, want %d", round, i, got[i], want)
					}
					want += int64(sz)
				}
				if l.WrotePosition() != want {
					t.Fatalf("WrotePosition %d, want %d", l.WrotePosition(), want)
				}
				offs = append(offs, got...)
				sizes = append(sizes, batch...)
			}
			check := func(l *Log) {
				t.Helper()
				for i, off := range offs {
					v, err := l.Read(off, sizes[i])
					if err != nil {
						t.Fatalf("read %d: %v", off, err)
					}
					if !bytes.Equal(v.Bytes(), record(off, sizes[i])) {
						t.Fatalf("record at %d differs", off)
					}
					v.Release()
				}
			}
			check(l)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			end := l.WrotePosition()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l, err = Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Truncate(end); err != nil {
				t.Fatal(err)
			}
			check(l)
			if _, err := l.AppendBatch([]int{0}, func(int, int64, []byte) {}); err == nil {
				t.Fatal("a zero-size record was accepted")
			}
		})
	}
}
