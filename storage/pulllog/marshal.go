package pulllog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// Serialized table (version 1), all integers varints (encoding/binary,
// minimal length), signed ones zig-zag:
//
//	"QPLT" | version u8 = 1 | groupCount uv
//	group:    subject str | group str | flags u8 (bit 0 broadcast) | maxPulledMsgSeq v | consumerCount uv
//	consumer: id str | pullSeq v | ackSeq v | lastActive v | runCount uv | run… | skippedCount uv | run…
//	run:      firstPullSeq − previous end uv | firstMsgSeq − previous end v (wrapping) | count uv
//	crc32 u32 big-endian (IEEE) of everything before it
//
// str is a uv length then the bytes. Groups are sorted by (subject, group)
// and consumers by id, so equal tables marshal to equal bytes. For unacked
// runs the "previous end" of the pull sequence starts at ackSeq+1, for
// skipped runs at 0; the message sequence's starts at 0. Deltas keep a
// steady consumer at a few bytes per run.
const (
	marshalMagic   = "QPLT"
	marshalVersion = 1

	// Smallest encodings, which bound every count by the bytes left.
	minGroupBytes    = 1 + 1 + 1 + 1 + 1
	minConsumerBytes = 1 + 1 + 1 + 1 + 1 + 1
	minRunBytes      = 1 + 1 + 1
)

// ErrCorrupt is wrapped by every Unmarshal error.
var ErrCorrupt = errors.New("pull log table corrupt")

// Marshal serializes the table for the action checkpoint. The output is
// deterministic: equal tables give equal bytes.
func (t *Table) Marshal() []byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	gks := make([]GroupKey, 0, len(t.groups))
	for gk := range t.groups {
		gks = append(gks, gk)
	}
	slices.SortFunc(gks, compareGroupKeys)

	size := 64
	for _, g := range t.groups {
		size += 32 + 40*len(g.consumers) // a steady consumer takes about that
	}
	b := append(make([]byte, 0, size), marshalMagic...)
	b = append(b, marshalVersion)
	b = binary.AppendUvarint(b, uint64(len(gks)))
	var ids []string
	for _, gk := range gks {
		g := t.groups[gk]
		b = appendString(b, gk.Subject)
		b = appendString(b, gk.Group)
		var flags byte
		if g.broadcast {
			flags = 1
		}
		b = append(b, flags)
		b = binary.AppendVarint(b, g.maxPulledMsgSeq)
		b = binary.AppendUvarint(b, uint64(len(g.consumers)))
		ids = ids[:0]
		for id := range g.consumers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			c := g.consumers[id]
			b = appendString(b, id)
			b = binary.AppendVarint(b, c.pullSeq)
			b = binary.AppendVarint(b, c.ackSeq)
			b = binary.AppendVarint(b, c.lastActive)
			b = appendRuns(b, c.runs, c.ackSeq+1)
			b = appendRuns(b, c.skipped, 0)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendRuns(b []byte, runs []Run, pullEnd int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(runs)))
	var msgEnd int64
	for _, r := range runs {
		b = binary.AppendUvarint(b, uint64(r.FirstPullSeq-pullEnd))
		b = binary.AppendVarint(b, r.FirstMsgSeq-msgEnd) // wraps; decoding wraps back
		b = binary.AppendUvarint(b, uint64(r.Count))
		pullEnd, msgEnd = r.FirstPullSeq+r.Count, r.FirstMsgSeq+r.Count
	}
	return b
}

// Unmarshal rebuilds a table from Marshal's output. Empty input is an empty
// table (a checkpoint written before any consumer existed). It checks the
// checksum and every invariant Apply maintains, and bounds each count and
// length by the input size, so damaged input is an error, never a panic or a
// large allocation.
func Unmarshal(data []byte) (*Table, error) {
	if len(data) == 0 {
		return New(), nil
	}
	if len(data) < len(marshalMagic)+1+1+4 || string(data[:len(marshalMagic)]) != marshalMagic {
		return nil, fmt.Errorf("%w: not a pull log table", ErrCorrupt)
	}
	if v := data[len(marshalMagic)]; v != marshalVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, v)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if got := crc32.ChecksumIEEE(body); got != sum {
		return nil, fmt.Errorf("%w: crc %#08x, computed %#08x", ErrCorrupt, sum, got)
	}
	d := reader{b: body, i: len(marshalMagic) + 1}
	t := d.table()
	if d.err == nil && d.i != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.i)
	}
	if d.err != nil {
		return nil, d.err
	}
	return t, nil
}

// reader decodes the body; the first error sticks and every later read
// returns zero, so the decoding code reads straight through.
type reader struct {
	b   []byte
	i   int
	err error
}

func (d *reader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.i, fmt.Sprintf(format, args...))
	}
}

func (d *reader) left() int { return len(d.b) - d.i }

func (d *reader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n > 1 && d.b[d.i+n-1] == 0 {
		d.fail("varint not minimal") // so that re-marshalling reproduces the input
		return 0
	}
	d.i += n
	return v
}

func (d *reader) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.Varint
}

// count reads a count and bounds it by the bytes left, minSize bytes per item.
func (d *reader) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(d.left()/minSize) {
		d.fail("count %d exceeds the input", n)
		return 0
	}
	return int(n)
}

func (d *reader) str() string {
	n := d.uvarint()
	if n > uint64(d.left()) {
		d.fail("string of %d bytes exceeds the input", n)
		return ""
	}
	d.i += int(n)
	return string(d.b[d.i-int(n) : d.i])
}

func (d *reader) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.left() < 1 {
		d.fail("short input")
		return 0
	}
	d.i++
	return d.b[d.i-1]
}

func (d *reader) table() *Table {
	n := d.count(minGroupBytes)
	t := &Table{groups: make(map[GroupKey]*group, n)}
	var prev GroupKey
	for i := range n {
		gk := GroupKey{Subject: d.str(), Group: d.str()}
		if i > 0 && compareGroupKeys(prev, gk) >= 0 {
			d.fail("groups not in ascending order")
		}
		prev = gk
		flags := d.byte()
		if flags > 1 {
			d.fail("group flags %#x", flags)
		}
		g := &group{broadcast: flags == 1, maxPulledMsgSeq: d.varint()}
		if g.maxPulledMsgSeq < -1 {
			d.fail("max pulled sequence %d", g.maxPulledMsgSeq)
		}
		nc := d.count(minConsumerBytes)
		g.consumers = make(map[string]*consumer, nc)
		var prevID string
		for j := range nc {
			id := d.str()
			if j > 0 && id <= prevID {
				d.fail("consumers not in ascending order")
			}
			prevID = id
			g.consumers[id] = d.consumer(g.broadcast)
		}
		if d.err != nil {
			return nil
		}
		t.groups[gk] = g
	}
	return t
}

func (d *reader) consumer(broadcast bool) *consumer {
	c := &consumer{pullSeq: d.varint(), ackSeq: d.varint(), lastActive: d.varint()}
	if c.ackSeq < -1 || c.pullSeq < c.ackSeq {
		d.fail("pull sequence %d, ack sequence %d", c.pullSeq, c.ackSeq)
		return c
	}
	// Unacked runs lie in (ackSeq, pullSeq], skipped ones in [0, ackSeq].
	c.runs = d.runs(c.ackSeq+1, c.pullSeq)
	c.skipped = d.runs(0, c.ackSeq)
	if broadcast && (len(c.runs) > 0 || len(c.skipped) > 0) {
		d.fail("broadcast consumer with a pull log")
	}
	return c
}

// runs reads ascending, disjoint runs inside [lo, hi].
func (d *reader) runs(lo, hi int64) []Run {
	n := d.count(minRunBytes)
	if n == 0 || d.err != nil {
		return nil
	}
	runs := make([]Run, 0, n)
	pullEnd, msgEnd := lo, int64(0)
	for range n {
		delta, msgDelta, count := d.uvarint(), d.varint(), d.uvarint()
		if d.err != nil {
			return nil
		}
		// Pull sequences left in [pullEnd, hi]. The int64 arithmetic may wrap
		// (hi == MaxInt64, or pullEnd one past it), but the true value lies
		// in [0, 2^63], so the uint64 conversion is exact.
		room := uint64(hi - pullEnd + 1)
		if hi < pullEnd || count == 0 || delta >= room || count > room-delta {
			d.fail("run outside [%d, %d]", lo, hi)
			return nil
		}
		r := Run{FirstPullSeq: pullEnd + int64(delta), FirstMsgSeq: msgEnd + msgDelta, Count: int64(count)}
		if r.FirstMsgSeq < 0 || r.Count-1 > math.MaxInt64-r.FirstMsgSeq {
			d.fail("run message sequences %d+%d", r.FirstMsgSeq, r.Count)
			return nil
		}
		runs = append(runs, r)
		pullEnd, msgEnd = r.FirstPullSeq+r.Count, r.FirstMsgSeq+r.Count
	}
	return runs
}
