package actionlog

import (
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

func benchLog(b *testing.B) *Log {
	l, err := Open(Config{FS: vfs.Default(), Dir: b.TempDir(), SegmentSize: 64 << 20, FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkAppend: one PULL per Append (the pull path writes one per pull).
func BenchmarkAppend(b *testing.B) {
	l := benchLog(b)
	batch := []Action{samplePull()}
	n, _ := EncodedSize(batch[0])
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendBatch10: ten actions per Append (a filtered pull).
func BenchmarkAppendBatch10(b *testing.B) {
	l := benchLog(b)
	batch := make([]Action, 10)
	for i := range batch {
		batch[i] = samplePull()
	}
	n, _ := EncodedSize(batch[0])
	b.SetBytes(int64(10 * n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIterate: replay speed (decoding copies the three strings).
func BenchmarkIterate(b *testing.B) {
	l := benchLog(b)
	batch := make([]Action, 100)
	for i := range batch {
		batch[i] = samplePull()
	}
	for range 1000 {
		l.Append(batch)
	}
	n, _ := EncodedSize(batch[0])
	b.SetBytes(int64(n))
	b.ReportAllocs()
	it := l.Iterate(0)
	for b.Loop() {
		if _, _, ok := it.Next(); !ok {
			it = l.Iterate(0)
		}
	}
}
