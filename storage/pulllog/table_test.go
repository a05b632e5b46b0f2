package pulllog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/qmq-go/qmq/storage/actionlog"
)

const ts = 1_700_000_000_000

func pull(c string, firstPull, lastPull, firstMsg int64) actionlog.Action {
	return actionlog.Action{Type: actionlog.Pull, Subject: "s", Group: "g", ConsumerID: c, Timestamp: ts,
		FirstPullSeq: firstPull, LastPullSeq: lastPull, FirstMsgSeq: firstMsg, LastMsgSeq: firstMsg + lastPull - firstPull}
}

func ack(c string, first, last int64) actionlog.Action {
	return actionlog.Action{Type: actionlog.RangeAck, Subject: "s", Group: "g", ConsumerID: c, Timestamp: ts + 1,
		FirstPullSeq: first, LastPullSeq: last}
}

func mustLookup(t *testing.T, tb *Table, c string, p, want int64) {
	t.Helper()
	got, ok := tb.Lookup("s", "g", c, p)
	if want < 0 {
		if ok {
			t.Fatalf("Lookup(%s, %d) = %d, want none", c, p, got)
		}
		return
	}
	if !ok || got != want {
		t.Fatalf("Lookup(%s, %d) = %d,%v, want %d", c, p, got, ok, want)
	}
}

// TestFilteredPull: a pull whose tag filter dropped messages is written as
// one PULL per contiguous run; the pull sequences stay contiguous.
func TestFilteredPull(t *testing.T) {
	tb := New()
	tb.Apply(pull("c", 0, 2, 100))  // msgs 100..102
	tb.Apply(pull("c", 3, 4, 110))  // msgs 110..111 (103..109 filtered out)
	tb.Apply(pull("c2", 0, 0, 112)) // another consumer takes the next message
	tb.Apply(pull("c", 5, 6, 113))
	for p, want := range []int64{100, 101, 102, 110, 111, 113, 114} {
		mustLookup(t, tb, "c", int64(p), want)
	}
	mustLookup(t, tb, "c", 7, -1)
	if got := tb.Unacked("s", "g", "c"); !slices.Equal(got, []Run{{0, 100, 3}, {3, 110, 2}, {5, 113, 2}}) {
		t.Fatalf("Unacked = %v", got)
	}
	if max, _ := tb.GroupMaxPulledMsgSeq("s", "g"); max != 114 {
		t.Fatalf("GroupMaxPulledMsgSeq = %d", max)
	}
	tb.Apply(ack("c", 0, 3))
	if got := tb.Unacked("s", "g", "c"); !slices.Equal(got, []Run{{4, 111, 1}, {5, 113, 2}}) {
		t.Fatalf("Unacked after ack = %v", got)
	}
	mustLookup(t, tb, "c", 3, -1)
	mustLookup(t, tb, "c", 4, 111)
	p, _ := tb.Consumer("s", "g", "c")
	if p.PullSeq != 6 || p.AckSeq != 3 || p.LastActive.UnixMilli() != ts+1 || p.Broadcast {
		t.Fatalf("Consumer = %+v", p)
	}
}

// TestContiguousPullsMerge: the common case keeps one run per consumer.
func TestContiguousPullsMerge(t *testing.T) {
	tb := New()
	for i := range int64(100) {
		tb.Apply(pull("c", i*10, i*10+9, 5000+i*10))
	}
	if got := tb.Unacked("s", "g", "c"); !slices.Equal(got, []Run{{0, 5000, 1000}}) {
		t.Fatalf("Unacked = %v", got)
	}
	tb.Apply(ack("c", 0, 999))
	if s := tb.Stats(); s.Runs != 0 || s.Unacked != 0 || s.Consumers != 1 || s.Groups != 1 {
		t.Fatalf("Stats after acking everything = %+v", s)
	}
}

func TestAckIdempotentAndClamped(t *testing.T) {
	tb := New()
	tb.Apply(pull("c", 0, 9, 0))
	tb.Apply(ack("c", 0, 4))
	before := tb.Marshal()
	tb.Apply(ack("c", 0, 4))
	tb.Apply(ack("c", 2, 3))
	if !bytes.Equal(before, tb.Marshal()) {
		t.Fatal("a repeated ack changed the table")
	}
	tb.Apply(ack("c", 3, 50)) // overlaps the acked prefix, runs past the pulls
	if p, _ := tb.Consumer("s", "g", "c"); p.AckSeq != 9 || p.PullSeq != 9 {
		t.Fatalf("progress %+v, want ack clamped to the pull position", p)
	}
	if tb.Skipped("s", "g", "c") != nil {
		t.Fatal("overlapping ack produced skipped entries")
	}
	tb.Apply(ack("nobody", 0, 3))
	if _, ok := tb.Consumer("s", "g", "nobody"); ok {
		t.Fatal("an ack created a consumer")
	}
}

// TestGapAck: an ack that starts beyond AckSeq+1 acknowledges the gap too, but
// the gap's entries are reported for re-delivery as retry messages.
func TestGapAck(t *testing.T) {
	tb := New()
	tb.Apply(pull("c", 0, 4, 10))
	tb.Apply(pull("c", 5, 9, 30))
	tb.Apply(ack("c", 0, 1))
	tb.Apply(ack("c", 3, 6)) // skips 2
	tb.Apply(ack("c", 9, 9)) // skips 7, 8
	if got := tb.Skipped("s", "g", "c"); !slices.Equal(got, []Run{{2, 12, 1}, {7, 32, 2}}) {
		t.Fatalf("Skipped = %v", got)
	}
	if got := tb.ConsumersWithSkipped(); !slices.Equal(got, []ConsumerKey{{"s", "g", "c"}}) {
		t.Fatalf("ConsumersWithSkipped = %v", got)
	}
	if got := tb.TakeSkipped("s", "g", "c"); len(got) != 2 {
		t.Fatalf("TakeSkipped = %v", got)
	}
	if tb.Skipped("s", "g", "c") != nil || tb.ConsumersWithSkipped() != nil {
		t.Fatal("TakeSkipped left entries behind")
	}
	if s := tb.Stats(); s.Runs != 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestOverlappingPullKeepsFirstMapping(t *testing.T) {
	tb := New()
	tb.Apply(pull("c", 0, 4, 100))
	tb.Apply(pull("c", 3, 6, 200)) // 3, 4 already assigned
	for p, want := range []int64{100, 101, 102, 103, 104, 202, 203} {
		mustLookup(t, tb, "c", int64(p), want)
	}
	tb.Apply(pull("c", 0, 2, 300)) // entirely a duplicate
	mustLookup(t, tb, "c", 0, 100)
	if max, _ := tb.GroupMaxPulledMsgSeq("s", "g"); max != 302 {
		t.Fatalf("group max %d: every pull counts towards it", max)
	}
}

func TestInvalidActionsIgnored(t *testing.T) {
	tb := New()
	for _, a := range []actionlog.Action{
		pull("c", 5, 4, 0),
		pull("c", -1, 3, 0),
		pull("c", 0, 3, -1),
		{Type: actionlog.Pull, Subject: "s", Group: "g", ConsumerID: "c", FirstPullSeq: 0, LastPullSeq: 3, FirstMsgSeq: 0, LastMsgSeq: 5},
		{Type: 7, Subject: "s", Group: "g", ConsumerID: "c"},
	} {
		tb.Apply(a)
	}
	if len(tb.Groups()) != 0 {
		t.Fatalf("invalid actions created %v", tb.Groups())
	}
	tb.Apply(pull("c", 0, 3, 0))
	tb.Apply(ack("c", 3, 1))
	tb.Apply(ack("c", -1, 1))
	if p, _ := tb.Consumer("s", "g", "c"); p.AckSeq != -1 {
		t.Fatalf("invalid acks applied: %+v", p)
	}
}

func TestBroadcast(t *testing.T) {
	tb := New()
	a := pull("client-1", 40, 49, 40)
	a.Broadcast = true
	tb.Apply(a)
	mustLookup(t, tb, "client-1", 45, 45)
	mustLookup(t, tb, "client-1", 50, -1)
	if tb.Unacked("s", "g", "client-1") != nil {
		t.Fatal("a broadcast consumer keeps a pull log")
	}
	tb.Apply(ack("client-1", 47, 49)) // gap 40..46: no retry for broadcast
	if tb.Skipped("s", "g", "client-1") != nil {
		t.Fatal("broadcast gap produced skipped entries")
	}
	if b, ok := tb.IsBroadcast("s", "g"); !b || !ok {
		t.Fatal("IsBroadcast")
	}
	if p, _ := tb.Consumer("s", "g", "client-1"); !p.Broadcast || p.AckSeq != 49 {
		t.Fatalf("Consumer = %+v", p)
	}
}

func TestForeverOfflineKeepsGroupCursor(t *testing.T) {
	tb := New()
	tb.Apply(pull("c", 0, 9, 500))
	tb.Apply(actionlog.Action{Type: actionlog.ForeverOffline, Subject: "s", Group: "g", ConsumerID: "c", Timestamp: ts})
	if _, ok := tb.Consumer("s", "g", "c"); ok {
		t.Fatal("consumer survived FOREVER_OFFLINE")
	}
	if max, ok := tb.GroupMaxPulledMsgSeq("s", "g"); !ok || max != 509 {
		t.Fatalf("group max %d,%v", max, ok)
	}
	if got := tb.Consumers("s", "g"); len(got) != 0 {
		t.Fatalf("Consumers = %v", got)
	}
	// It may come back, starting afresh.
	tb.Apply(pull("c", 0, 0, 510))
	mustLookup(t, tb, "c", 0, 510)
}

// TestResetSetsGroupStart: a RESET makes a group known before any pull, at
// the position it names (-1: from the first message), survives
// Marshal/Unmarshal, and moves the cursor back as well as forward.
func TestResetSetsGroupStart(t *testing.T) {
	reset := func(group, consumer string, broadcast bool, last int64) actionlog.Action {
		return actionlog.Action{Type: actionlog.Reset, Subject: "s", Group: group, ConsumerID: consumer, Timestamp: ts, Broadcast: broadcast, LastMsgSeq: last}
	}
	groupAt := func(tb *Table, group string, want int64) {
		t.Helper()
		if got, ok := tb.GroupMaxPulledMsgSeq("s", group); !ok || got != want {
			t.Fatalf("group %s: max pulled %d,%v; want %d", group, got, ok, want)
		}
	}
	tb := New()
	tb.Apply(reset("g", "c", false, -1)) // an empty subject
	groupAt(tb, "g", -1)
	if _, ok := tb.Consumer("s", "g", "c"); ok {
		t.Fatal("a group RESET created a consumer")
	}
	tb.Apply(reset("g", "c", false, 41))
	groupAt(tb, "g", 41)
	tb.Apply(pull("c", 0, 2, 42))
	groupAt(tb, "g", 44)
	tb.Apply(reset("g", "", false, 9)) // CONSUME_MANAGE to an earlier message
	groupAt(tb, "g", 9)
	mustLookup(t, tb, "c", 1, 43) // unacked entries stay redeliverable

	tb.Apply(reset("bc", "b1", true, 99))
	if p, ok := tb.Consumer("s", "bc", "b1"); !ok || p.PullSeq != 99 || p.AckSeq != 99 || !p.Broadcast {
		t.Fatalf("broadcast consumer after RESET: %+v %v", p, ok)
	}
	tb.Apply(reset("bc", "b1", false, 5)) // the other kind: ignored
	tb.Apply(reset("g", "c", true, 5))
	tb.Apply(reset("g", "c", false, -2)) // invalid: ignored
	groupAt(tb, "g", 9)

	cp, err := Unmarshal(tb.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	groupAt(cp, "g", 9)
	if p, ok := cp.Consumer("s", "bc", "b1"); !ok || p.PullSeq != 99 || p.AckSeq != 99 {
		t.Fatalf("broadcast consumer after Unmarshal: %+v %v", p, ok)
	}
	cp.Apply(actionlog.Action{Type: actionlog.Pull, Subject: "s", Group: "bc", ConsumerID: "b1", Timestamp: ts, Broadcast: true,
		FirstPullSeq: 100, LastPullSeq: 101, FirstMsgSeq: 100, LastMsgSeq: 101})
	if p, _ := cp.Consumer("s", "bc", "b1"); p.PullSeq != 101 {
		t.Fatalf("broadcast pull after RESET: %+v", p)
	}
}

func TestUnmarshalEmptyAndGolden(t *testing.T) {
	tb, err := Unmarshal(nil)
	if err != nil || len(tb.Groups()) != 0 {
		t.Fatalf("Unmarshal(nil) = %v, %v", tb.Groups(), err)
	}
	tb.Apply(pull("c", 0, 1, 7))
	want := []byte("QPLT\x01" + // magic, version
		"\x01\x01s\x01g\x00\x10" + // one group: "s", "g", not broadcast, max pulled 8 (zig-zag 16)
		"\x01\x01c\x02\x01") // one consumer "c", pull 1, ack -1 (zig-zag)
	want = binary.AppendUvarint(want, uint64(ts)*2) // lastActive, zig-zag
	want = append(want, 1, 0, 14, 2, 0)             // one run: delta 0, msg 7 (zig-zag 14), count 2; no skipped
	want = binary.BigEndian.AppendUint32(want, crc32.ChecksumIEEE(want))
	if got := tb.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal\n got %q\nwant %q", got, want)
	}
}

func TestUnmarshalRejectsDamage(t *testing.T) {
	tb := New()
	for i := range 20 {
		c := "c" + strconv.Itoa(i)
		tb.Apply(pull(c, 0, 9, int64(i*10)))
		tb.Apply(ack(c, 2, 3))
	}
	b := tb.Marshal()
	for n := 1; n < len(b); n++ {
		if _, err := Unmarshal(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d: err %v", n, err)
		}
	}
	for i := range b {
		d := bytes.Clone(b)
		d[i] ^= 0x10
		if _, err := Unmarshal(d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: err %v", i, err)
		}
	}
	d := bytes.Clone(b)
	d[4] = 2
	if _, err := Unmarshal(d); err == nil {
		t.Fatal("unknown version accepted")
	}
}

// withCRC replaces the last four bytes of body with its checksum, so the fuzz
// engine's mutations reach the structure behind the checksum.
func withCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	return b
}

func heapAllocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func FuzzUnmarshal(f *testing.F) {
	tb := New()
	f.Add(tb.Marshal())
	tb.Apply(pull("c", 0, 4, 10))
	tb.Apply(pull("c", 5, 9, 30))
	tb.Apply(ack("c", 3, 6))
	b := pull("bc", 3, 4, 3)
	b.Group, b.Broadcast = "bc", true
	tb.Apply(b)
	tb.Apply(pull("d", 0, 0, 1<<40))
	f.Add(tb.Marshal())
	f.Add([]byte("QPLT\x01\xff\xff\xff\xff\x0f\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, withCRC(data)} {
			before := heapAllocated()
			tb, err := Unmarshal(in)
			// Strings, maps and run slices, each bounded by the input: the
			// maps' per-entry overhead dominates.
			if got := heapAllocated() - before; got > uint64(64<<10+200*len(in)) {
				t.Fatalf("allocated %d bytes for %d input bytes", got, len(in))
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			// Accepted input is canonical, and the table is usable.
			if len(in) > 0 {
				if again := tb.Marshal(); !bytes.Equal(again, in) {
					t.Fatalf("re-marshal differs\n got %x\nwant %x", again, in)
				}
			}
			for _, gk := range tb.Groups() {
				for _, id := range tb.Consumers(gk.Subject, gk.Group) {
					p, _ := tb.Consumer(gk.Subject, gk.Group, id)
					tb.Lookup(gk.Subject, gk.Group, id, p.AckSeq+1)
					tb.Lookup(gk.Subject, gk.Group, id, p.PullSeq)
					tb.Apply(actionlog.Action{Type: actionlog.RangeAck, Subject: gk.Subject, Group: gk.Group, ConsumerID: id,
						FirstPullSeq: max(0, p.AckSeq-1), LastPullSeq: p.PullSeq})
					tb.Apply(actionlog.Action{Type: actionlog.Pull, Subject: gk.Subject, Group: gk.Group, ConsumerID: id,
						FirstPullSeq: 0, LastPullSeq: 3, FirstMsgSeq: 0, LastMsgSeq: 3})
				}
			}
		}
	})
}

// TestConcurrentReaders: the replay goroutine applies while the broker reads
// (run with -race).
func TestConcurrentReaders(t *testing.T) {
	tb := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range int64(2000) {
			tb.Apply(pull("c", i*2, i*2+1, i*2))
			tb.Apply(ack("c", i*2, i*2))
		}
	}()
	for {
		select {
		case <-done:
			if p, _ := tb.Consumer("s", "g", "c"); p.PullSeq != 3999 || p.AckSeq != 3998 {
				t.Fatalf("progress %+v", p)
			}
			return
		default:
		}
		if p, ok := tb.Consumer("s", "g", "c"); ok && p.PullSeq > p.AckSeq {
			if got, ok := tb.Lookup("s", "g", "c", p.PullSeq); ok && got != p.PullSeq {
				// The pull may have been acked since; only a wrong mapping is an error.
				t.Fatalf("Lookup(%d) = %d", p.PullSeq, got)
			}
		}
		tb.Unacked("s", "g", "c")
		tb.Marshal()
		tb.Stats()
	}
}
