package pulllog

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/qmq-go/qmq/storage/actionlog"
)

const benchConsumers = 10_000

func consumerID(i int) string { return fmt.Sprintf("10.0.%d.%d@pid-%d", i/250, i%250, 4000+i) }

// BenchmarkApplyPullAck: one op is a PULL of 10 messages followed by the
// RANGE_ACK of the previous pull, round-robin over 10,000 consumers of one
// group, so each consumer keeps 10 unacked messages.
func BenchmarkApplyPullAck(b *testing.B) {
	ids := make([]string, benchConsumers)
	for i := range ids {
		ids[i] = consumerID(i)
	}
	tb := New()
	next := make([]int64, benchConsumers)
	var cursor int64
	step := func(i int) {
		c := i % benchConsumers
		p := next[c]
		tb.Apply(actionlog.Action{Type: actionlog.Pull, Subject: "order.created", Group: "billing", ConsumerID: ids[c],
			Timestamp: 1, FirstPullSeq: p, LastPullSeq: p + 9, FirstMsgSeq: cursor, LastMsgSeq: cursor + 9})
		cursor += 10
		next[c] = p + 10
		if p > 0 {
			tb.Apply(actionlog.Action{Type: actionlog.RangeAck, Subject: "order.created", Group: "billing", ConsumerID: ids[c],
				Timestamp: 2, FirstPullSeq: p - 10, LastPullSeq: p - 1})
		}
	}
	for i := range benchConsumers {
		step(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		step(i)
		i++
	}
	b.StopTimer()
	if s := tb.Stats(); s.Consumers != benchConsumers || s.Unacked != 10*benchConsumers {
		b.Fatalf("stats %+v", s)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkTableMemory measures the heap held by a table of 10,000 consumers
// (10 groups of 1,000) with 10 unacked messages each, after a realistic
// history (many pull/ack rounds, so slices have been through their growth and
// trimming), and the size of its serialization.
func BenchmarkTableMemory(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		tb := New()
		next := make([]int64, benchConsumers)
		var cursor int64
		for round := range 5 {
			for c := range benchConsumers {
				g := fmt.Sprintf("group-%d", c%10)
				id := consumerID(c)
				p := next[c]
				tb.Apply(actionlog.Action{Type: actionlog.Pull, Subject: "order.created", Group: g, ConsumerID: id,
					Timestamp: 1_700_000_000_000, FirstPullSeq: p, LastPullSeq: p + 9, FirstMsgSeq: cursor, LastMsgSeq: cursor + 9})
				cursor += 10
				next[c] += 10
				if round > 0 {
					tb.Apply(actionlog.Action{Type: actionlog.RangeAck, Subject: "order.created", Group: g, ConsumerID: id,
						Timestamp: 1_700_000_000_001, FirstPullSeq: p - 10, LastPullSeq: p - 1})
				}
			}
		}
		held := heapInUse() - before
		if s := tb.Stats(); s.Consumers != benchConsumers || s.Unacked != 10*benchConsumers {
			b.Fatalf("stats %+v", s)
		}
		b.ReportMetric(float64(held), "heap-bytes")
		b.ReportMetric(float64(held)/benchConsumers, "heap-bytes/consumer")
		b.ReportMetric(float64(len(tb.Marshal())), "marshal-bytes")
		runtime.KeepAlive(tb)
	}
}

// BenchmarkMarshal10k and BenchmarkUnmarshal10k: the checkpoint cost.
func benchTable() *Table {
	tb := New()
	for c := range benchConsumers {
		tb.Apply(actionlog.Action{Type: actionlog.Pull, Subject: "order.created", Group: fmt.Sprintf("group-%d", c%10),
			ConsumerID: consumerID(c), Timestamp: 1_700_000_000_000, FirstPullSeq: 0, LastPullSeq: 9,
			FirstMsgSeq: int64(c) * 10, LastMsgSeq: int64(c)*10 + 9})
	}
	return tb
}

func BenchmarkMarshal10k(b *testing.B) {
	tb := benchTable()
	b.ReportAllocs()
	for b.Loop() {
		b.SetBytes(int64(len(tb.Marshal())))
	}
}

func BenchmarkUnmarshal10k(b *testing.B) {
	data := benchTable().Marshal()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tb := benchTable()
	id := consumerID(4242)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tb.Lookup("order.created", "group-2", id, 5); !ok {
			b.Fatal("missing")
		}
	}
}
