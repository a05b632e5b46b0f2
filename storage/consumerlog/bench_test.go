package consumerlog

import (
	"fmt"
	"testing"
)

// benchUnits keeps benchmark segments at 23 MB: segment files are
// preallocated, and the default (220 MB) times many subjects fills a disk.
const benchUnits = 1 << 20

func BenchmarkGet(b *testing.B) {
	m, err := Open(Config{Dir: b.TempDir(), UnitsPerSegment: benchUnits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const n = 1 << 20
	for i := range 20 { // other subjects in the map
		putRange(b, m, fmt.Sprintf("subject.%d", i), 0, 0)
	}
	putRange(b, m, "order.created", 0, n-1)
	b.ReportAllocs()
	b.ResetTimer()
	var seq int64
	for b.Loop() {
		if _, found, err := m.Get("order.created", seq&(n-1)); !found || err != nil {
			b.Fatal("not found")
		}
		seq += 7919 // a prime stride: not sequential, still in the page cache
	}
}

// BenchmarkGetSequential reads consecutive sequences, as a pull does: the
// cost of the lookup itself, without BenchmarkGet's cache and TLB miss.
func BenchmarkGetSequential(b *testing.B) {
	m, err := Open(Config{Dir: b.TempDir(), UnitsPerSegment: benchUnits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const n = 1 << 20
	putRange(b, m, "order.created", 0, n-1)
	b.ReportAllocs()
	b.ResetTimer()
	var seq int64
	for b.Loop() {
		if _, found, err := m.Get("order.created", seq&(n-1)); !found || err != nil {
			b.Fatal("not found")
		}
		seq++
	}
}

func BenchmarkGetParallel(b *testing.B) {
	m, err := Open(Config{Dir: b.TempDir(), UnitsPerSegment: benchUnits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const n = 1 << 20
	putRange(b, m, "order.created", 0, n-1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var seq int64
		for pb.Next() {
			if _, found, err := m.Get("order.created", seq&(n-1)); !found || err != nil {
				b.Error("not found")
				return
			}
			seq += 7919
		}
	})
}

func BenchmarkPut(b *testing.B) {
	m, err := Open(Config{Dir: b.TempDir(), UnitsPerSegment: benchUnits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	e := entryFor("s", 1)
	b.ReportAllocs()
	var seq int64
	for b.Loop() {
		if err := m.Put("order.created", seq, e); err != nil {
			b.Fatal(err)
		}
		seq++
	}
}
