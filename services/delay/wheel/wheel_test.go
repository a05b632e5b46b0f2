package wheel

import (
	"encoding/binary"
	"math/rand"
	"runtime"
	"sort"
	"testing"
)

// model is the reference: a plain set of items.
type model map[int64]Item

// check runs ops against a wheel and the model: never early, never lost,
// nothing returned twice, earliest tick first.
func check(t *testing.T, tick int64, ops []byte) {
	t.Helper()
	w := New(tick)
	m := model{}
	now := int64(1_000_000)
	seq := int64(0)
	for len(ops) >= 3 {
		op, a, b := ops[0], int64(ops[1]), int64(ops[2])
		ops = ops[3:]
		switch op % 4 {
		case 0, 1: // add, sometimes in the past
			it := Item{Time: now + (a-64)*37 + b, Seq: seq, Offset: seq * 10, Size: int32(b)}
			seq++
			w.Add(it)
			m[it.Seq] = it
		case 2: // advance and pop
			now += a * 13
			got := w.PopDue(now, int(b%16)+1, nil)
			lastTick := int64(-1 << 62)
			for _, it := range got {
				want, ok := m[it.Seq]
				if !ok {
					t.Fatalf("popped unknown or already popped %+v", it)
				}
				if want != it {
					t.Fatalf("popped %+v, added %+v", it, want)
				}
				if it.Time > now {
					t.Fatalf("popped %+v early (now %d)", it, now)
				}
				if tk := w.tickOf(it.Time); tk < lastTick {
					t.Fatalf("tick %d after tick %d", tk, lastTick)
				} else {
					lastTick = tk
				}
				delete(m, it.Seq)
			}
			if len(got) < int(b%16)+1 {
				for _, it := range m {
					if it.Time <= now {
						t.Fatalf("%+v due at %d but not popped", it, now)
					}
				}
			}
		case 3: // remove a few, some unknown
			var keys []Key
			for s := range m {
				keys = append(keys, Key{Time: m[s].Time, Seq: s})
				if len(keys) >= int(a%4) {
					break
				}
			}
			keys = append(keys, Key{Time: now, Seq: -1})
			found := w.Remove(keys)
			if len(found) != len(keys)-1 {
				t.Fatalf("removed %d of %d", len(found), len(keys)-1)
			}
			for _, k := range found {
				delete(m, k.Seq)
			}
		}
		if w.Len() != len(m) {
			t.Fatalf("wheel has %d, model %d", w.Len(), len(m))
		}
		if nt, ok := w.Next(); ok {
			for _, it := range m {
				if it.Time < nt {
					t.Fatalf("Next %d after entry %+v", nt, it)
				}
			}
		}
	}
	// Drain: everything comes out, nothing early.
	now += 1 << 40
	got := w.PopDue(now, 1<<30, nil)
	for _, it := range got {
		if _, ok := m[it.Seq]; !ok {
			t.Fatalf("drained unknown %+v", it)
		}
		delete(m, it.Seq)
	}
	if len(m) != 0 || w.Len() != 0 || w.Ticks() != 0 {
		t.Fatalf("lost %d entries (wheel len %d, ticks %d)", len(m), w.Len(), w.Ticks())
	}
}

func TestProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		ops := make([]byte, 3*(1+rng.Intn(400)))
		rng.Read(ops)
		check(t, []int64{1, 500, 1000}[i%3], ops)
	}
}

func FuzzWheel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 100, 3, 3, 1, 0})
	f.Add(binary.BigEndian.AppendUint64(nil, 0x0001020304050607))
	f.Fuzz(func(t *testing.T, ops []byte) {
		check(t, 1000, ops)
	})
}

func TestPopDueOrderAndLimit(t *testing.T) {
	w := New(1000)
	for i := int64(0); i < 10; i++ {
		w.Add(Item{Time: 10_000 - i*1000 + 500, Seq: i})
	}
	got := w.PopDue(5_600, 100, nil)
	var times []int64
	for _, it := range got {
		times = append(times, it.Time)
	}
	if !sort.SliceIsSorted(times, func(i, j int) bool { return times[i] < times[j] }) || len(got) != 5 {
		t.Fatalf("got %v", times)
	}
	if nt, _ := w.Next(); nt != 6_500 {
		t.Fatalf("next %d", nt)
	}
	// An entry later in the same tick stays until it is due.
	w.Add(Item{Time: 6_900, Seq: 100})
	if got := w.PopDue(6_600, 10, nil); len(got) != 1 || got[0].Seq != 4 {
		t.Fatalf("got %+v", got)
	}
	if nt, _ := w.Next(); nt != 6_900 {
		t.Fatalf("next %d", nt)
	}
}

// TestMemoryPerEntry reports the heap bytes per entry for 1,000,000 entries
// spread over an hour (the budget is 40).
func TestMemoryPerEntry(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := New(1000)
	const n = 1_000_000
	for i := int64(0); i < n; i++ {
		w.Add(Item{Time: 1_700_000_000_000 + (i*7919)%3_600_000, Seq: i, Offset: i * 100, Size: 100})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("wheel: %.1f bytes/entry for %d entries in %d ticks", per, n, w.Ticks())
	if per > 40 {
		t.Errorf("%.1f bytes/entry, budget 40", per)
	}
	runtime.KeepAlive(w)
}

func BenchmarkAddPop(b *testing.B) {
	w := New(1000)
	rng := rand.New(rand.NewSource(1))
	now := int64(1_700_000_000_000)
	var dst []Item
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Add(Item{Time: now + rng.Int63n(3_600_000), Seq: int64(i)})
		if i%64 == 63 {
			now += 1000
			dst = w.PopDue(now, 1<<20, dst[:0])
		}
	}
}
