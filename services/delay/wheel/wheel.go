package wheel

import (
	"fmt"
)

// Item is one scheduled entry: when it is due, the message-log sequence that
// identifies it, and where its record lies in its schedule bucket.
type Item struct {
	Time   int64 // unix milliseconds
	Seq    int64
	Offset int64
	Size   int32
}

// node is an Item in the arena; next links the tick's list (index+1, 0 ends).
type node struct {
	time, seq, off int64
	size           int32
	next           int32
}

// chunkSize nodes per arena chunk (128 KiB): small enough that a nearly
// empty wheel stays small, large enough that the chunk table is negligible.
const chunkSize = 4096

// list is one tick's entries. min is a lower bound of their times (exact
// after every full walk), so the wheel knows when the tick is next due.
type list struct {
	head, tail int32
	n          int32
	min        int64
}

// Wheel is a timing wheel over ticks of TickMillis. See the package
// documentation.
type Wheel struct {
	tick   int64
	chunks [][]node
	free   int32 // free list through node.next (index+1, 0: empty)
	hwm    int32 // nodes ever allocated
	lists  map[int64]*list
	heap   []int64 // ticks that have a list, min-heap
	n      int
}

// New returns an empty wheel with ticks of tickMillis milliseconds.
func New(tickMillis int64) *Wheel {
	if tickMillis <= 0 {
		panic(fmt.Sprintf("wheel: tick of %d ms", tickMillis))
	}
	return &Wheel{tick: tickMillis, lists: map[int64]*list{}}
}

// Len is the number of entries in the wheel.
func (w *Wheel) Len() int { return w.n }

// Ticks is the number of ticks holding entries.
func (w *Wheel) Ticks() int { return len(w.heap) }

func (w *Wheel) node(i int32) *node {
	i--
	return &w.chunks[i/chunkSize][i%chunkSize]
}

func (w *Wheel) alloc() int32 {
	if w.free != 0 {
		i := w.free
		w.free = w.node(i).next
		return i
	}
	if int(w.hwm) == len(w.chunks)*chunkSize {
		if w.hwm >= 1<<31-1-chunkSize {
			panic("wheel: more than 2^31 entries")
		}
		w.chunks = append(w.chunks, make([]node, chunkSize))
	}
	w.hwm++
	return w.hwm
}

func (w *Wheel) release(i int32) {
	nd := w.node(i)
	*nd = node{next: w.free}
	w.free = i
}

func (w *Wheel) tickOf(t int64) int64 {
	if t < 0 {
		return (t - w.tick + 1) / w.tick
	}
	return t / w.tick
}

// Add inserts it. O(1), plus O(log ticks) when its tick was empty.
func (w *Wheel) Add(it Item) {
	i := w.alloc()
	nd := w.node(i)
	*nd = node{time: it.Time, seq: it.Seq, off: it.Offset, size: it.Size}
	tk := w.tickOf(it.Time)
	l := w.lists[tk]
	if l == nil {
		l = &list{head: i, tail: i, n: 1, min: it.Time}
		w.lists[tk] = l
		w.push(tk)
	} else {
		w.node(l.tail).next = i
		l.tail = i
		l.n++
		l.min = min(l.min, it.Time)
	}
	w.n++
}

// Next returns the earliest time at which an entry may be due (a lower
// bound of the earliest entry's time); ok is false when the wheel is empty.
func (w *Wheel) Next() (t int64, ok bool) {
	if len(w.heap) == 0 {
		return 0, false
	}
	return w.lists[w.heap[0]].min, true
}

// PopDue removes up to max entries whose time is at or before now, earliest
// tick first, and appends them to dst.
func (w *Wheel) PopDue(now int64, max int, dst []Item) []Item {
	taken := 0
	for taken < max && len(w.heap) > 0 {
		tk := w.heap[0]
		l := w.lists[tk]
		if l.min > now {
			break
		}
		var prev int32
		newMin := int64(1<<63 - 1)
		i := l.head
		for i != 0 && taken < max {
			nd := w.node(i)
			next := nd.next
			if nd.time <= now {
				dst = append(dst, Item{Time: nd.time, Seq: nd.seq, Offset: nd.off, Size: nd.size})
				taken++
				w.unlink(l, prev, i, next)
				w.release(i)
			} else {
				newMin = min(newMin, nd.time)
				prev = i
			}
			i = next
		}
		if l.n == 0 {
			w.dropTick(tk)
			continue
		}
		if i == 0 { // walked the whole tick: what is left is not due
			l.min = newMin
			break
		}
	}
	return dst
}

func (w *Wheel) unlink(l *list, prev, i, next int32) {
	if prev == 0 {
		l.head = next
	} else {
		w.node(prev).next = next
	}
	if l.tail == i {
		l.tail = prev
	}
	l.n--
	w.n--
}

// Key names an entry for Remove.
type Key struct {
	Time int64
	Seq  int64
}

// Remove removes the entries named by keys, walking each tick concerned
// once, and returns the keys it found (in no particular order).
func (w *Wheel) Remove(keys []Key) []Key {
	byTick := map[int64]map[int64]struct{}{}
	for _, k := range keys {
		tk := w.tickOf(k.Time)
		if w.lists[tk] == nil {
			continue
		}
		m := byTick[tk]
		if m == nil {
			m = map[int64]struct{}{}
			byTick[tk] = m
		}
		m[k.Seq] = struct{}{}
	}
	var found []Key
	for tk, seqs := range byTick {
		l := w.lists[tk]
		var prev int32
		for i := l.head; i != 0 && len(seqs) > 0; {
			nd := w.node(i)
			next := nd.next
			if _, ok := seqs[nd.seq]; ok {
				delete(seqs, nd.seq)
				found = append(found, Key{Time: nd.time, Seq: nd.seq})
				w.unlink(l, prev, i, next)
				w.release(i)
			} else {
				prev = i
			}
			i = next
		}
		if l.n == 0 {
			w.dropTick(tk)
		}
	}
	return found
}

// dropTick forgets an empty tick (rarely not the heap's minimum: Remove).
func (w *Wheel) dropTick(tk int64) {
	delete(w.lists, tk)
	for j, v := range w.heap {
		if v == tk {
			last := len(w.heap) - 1
			w.heap[j] = w.heap[last]
			w.heap = w.heap[:last]
			if j < last {
				w.down(j)
				w.up(j)
			}
			return
		}
	}
}

func (w *Wheel) push(tk int64) {
	w.heap = append(w.heap, tk)
	w.up(len(w.heap) - 1)
}

func (w *Wheel) up(j int) {
	for j > 0 {
		p := (j - 1) / 2
		if w.heap[p] <= w.heap[j] {
			return
		}
		w.heap[p], w.heap[j] = w.heap[j], w.heap[p]
		j = p
	}
}

func (w *Wheel) down(j int) {
	n := len(w.heap)
	for {
		c := 2*j + 1
		if c >= n {
			return
		}
		if c+1 < n && w.heap[c+1] < w.heap[c] {
			c++
		}
		if w.heap[j] <= w.heap[c] {
			return
		}
		w.heap[j], w.heap[c] = w.heap[c], w.heap[j]
		j = c
	}
}
