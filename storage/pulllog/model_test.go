package pulllog

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/actionlog"
)

// model is the obvious implementation the Table must agree with: one map
// entry per pulled sequence, nothing ever trimmed.
type model struct {
	groups map[GroupKey]*modelGroup
}

type modelGroup struct {
	broadcast bool
	max       int64
	consumers map[string]*modelConsumer
}

type modelConsumer struct {
	pull, ack, active int64
	entries           map[int64]int64 // pull seq -> msg seq, every pull ever
	skipped           map[int64]int64
}

func newModel() *model { return &model{groups: map[GroupKey]*modelGroup{}} }

func (m *model) apply(a actionlog.Action) {
	gk := GroupKey{a.Subject, a.Group}
	g := m.groups[gk]
	switch a.Type {
	case actionlog.Pull:
		if a.FirstPullSeq < 0 || a.FirstMsgSeq < 0 || a.FirstPullSeq > a.LastPullSeq ||
			a.LastPullSeq-a.FirstPullSeq != a.LastMsgSeq-a.FirstMsgSeq {
			return
		}
		if g == nil {
			g = &modelGroup{broadcast: a.Broadcast, max: -1, consumers: map[string]*modelConsumer{}}
			m.groups[gk] = g
		}
		g.max = max(g.max, a.LastMsgSeq)
		c := g.consumers[a.ConsumerID]
		if c == nil {
			c = &modelConsumer{pull: -1, ack: -1, active: a.Timestamp, entries: map[int64]int64{}, skipped: map[int64]int64{}}
			g.consumers[a.ConsumerID] = c
		}
		c.active = max(c.active, a.Timestamp)
		for p := a.FirstPullSeq; p <= a.LastPullSeq; p++ {
			if p > c.pull && !g.broadcast {
				c.entries[p] = a.FirstMsgSeq + p - a.FirstPullSeq
			}
		}
		c.pull = max(c.pull, a.LastPullSeq)
	case actionlog.RangeAck:
		if g == nil || a.FirstPullSeq < 0 || a.FirstPullSeq > a.LastPullSeq {
			return
		}
		c := g.consumers[a.ConsumerID]
		if c == nil {
			return
		}
		c.active = max(c.active, a.Timestamp)
		first, last := max(a.FirstPullSeq, c.ack+1), min(a.LastPullSeq, c.pull)
		if first > last {
			return
		}
		for p := c.ack + 1; p < first; p++ {
			if v, ok := c.entries[p]; ok && !g.broadcast {
				c.skipped[p] = v
			}
		}
		c.ack = last
	case actionlog.ForeverOffline:
		if g != nil {
			delete(g.consumers, a.ConsumerID)
		}
	case actionlog.Reset:
		if a.LastMsgSeq < -1 || (a.Broadcast && a.ConsumerID == "") || (g != nil && g.broadcast != a.Broadcast) {
			return
		}
		if g == nil {
			g = &modelGroup{broadcast: a.Broadcast, max: -1, consumers: map[string]*modelConsumer{}}
			m.groups[gk] = g
		}
		if !g.broadcast {
			g.max = a.LastMsgSeq
			return
		}
		g.max = max(g.max, a.LastMsgSeq)
		c := g.consumers[a.ConsumerID]
		if c == nil {
			c = &modelConsumer{active: a.Timestamp, entries: map[int64]int64{}, skipped: map[int64]int64{}}
			g.consumers[a.ConsumerID] = c
		}
		c.active = max(c.active, a.Timestamp)
		c.pull, c.ack = a.LastMsgSeq, a.LastMsgSeq
	}
}

func (m *model) lookup(k ConsumerKey, p int64) (int64, bool) {
	g := m.groups[GroupKey{k.Subject, k.Group}]
	if g == nil {
		return 0, false
	}
	c := g.consumers[k.ConsumerID]
	if c == nil || p <= c.ack || p > c.pull {
		return 0, false
	}
	if g.broadcast {
		return p, true
	}
	v, ok := c.entries[p]
	return v, ok
}

type pair struct{ pull, msg int64 }

func expand(runs []Run) []pair {
	var out []pair
	for _, r := range runs {
		for i := range r.Count {
			out = append(out, pair{r.FirstPullSeq + i, r.FirstMsgSeq + i})
		}
	}
	return out
}

func sortedPairs(m map[int64]int64, keep func(int64) bool) []pair {
	var out []pair
	for _, p := range slices.Sorted(maps.Keys(m)) {
		if keep(p) {
			out = append(out, pair{p, m[p]})
		}
	}
	return out
}

// actionGen produces mostly sensible action streams (continuing pull
// sequences, acks from the ack position) salted with everything the table
// must tolerate: overlaps, gaps, duplicates, acks beyond the pull position,
// unknown consumers, invalid ranges, kind mismatches, offline consumers.
type actionGen struct {
	r       *rand.Rand
	m       *model
	cursors map[GroupKey]int64
	now     int64
}

var (
	genSubjects  = []string{"s1", "%RETRY%s1%g1"}
	genGroups    = []string{"g1", "g2", "bc"}
	genConsumers = []string{"c1", "c2", "c3"}
)

func (g *actionGen) next() actionlog.Action {
	r := g.r
	a := actionlog.Action{Subject: genSubjects[r.IntN(len(genSubjects))], Group: genGroups[r.IntN(len(genGroups))],
		ConsumerID: genConsumers[r.IntN(len(genConsumers))]}
	g.now += int64(r.IntN(1000)) - 100 // occasionally back in time
	a.Timestamp = g.now
	var pull, ack int64 = -1, -1
	if mg := g.m.groups[GroupKey{a.Subject, a.Group}]; mg != nil {
		if c := mg.consumers[a.ConsumerID]; c != nil {
			pull, ack = c.pull, c.ack
		}
	}
	switch x := r.IntN(100); {
	case x < 50:
		a.Type = actionlog.Pull
		a.Broadcast = a.Group == "bc"
		if r.IntN(50) == 0 {
			a.Broadcast = !a.Broadcast
		}
		n := int64(1 + r.IntN(5))
		gk := GroupKey{a.Subject, a.Group}
		cur := g.cursors[gk]
		if r.IntN(5) == 0 {
			cur += int64(r.IntN(4)) // filtered-out messages
		}
		a.FirstMsgSeq, a.LastMsgSeq = cur, cur+n-1
		g.cursors[gk] = cur + n
		switch y := r.IntN(20); {
		case a.Broadcast:
			a.FirstPullSeq = a.FirstMsgSeq
		case y == 0:
			a.FirstPullSeq = max(0, pull-int64(r.IntN(4))) // overlap
		case y == 1:
			a.FirstPullSeq = pull + 1 + int64(r.IntN(3)) // gap
		default:
			a.FirstPullSeq = pull + 1
		}
		a.LastPullSeq = a.FirstPullSeq + n - 1
		if r.IntN(40) == 0 { // invalid
			switch r.IntN(3) {
			case 0:
				a.LastMsgSeq++
			case 1:
				a.FirstPullSeq, a.LastPullSeq = a.LastPullSeq+1, a.FirstPullSeq
			default:
				a.FirstPullSeq, a.LastPullSeq = -2, -2+n-1
			}
		}
	case x < 89:
		a.Type = actionlog.RangeAck
		switch y := r.IntN(20); {
		case y < 2:
			a.FirstPullSeq = ack + 2 + int64(r.IntN(3)) // gap
		case y < 4:
			a.FirstPullSeq = max(0, ack-int64(r.IntN(3))) // duplicate prefix
		case y == 4:
			a.FirstPullSeq = -1
		default:
			a.FirstPullSeq = ack + 1
		}
		a.LastPullSeq = a.FirstPullSeq + int64(r.IntN(6)) - 1
		if r.IntN(10) == 0 {
			a.LastPullSeq = pull + int64(r.IntN(3)) // maybe beyond the pull position
		}
	case x < 95:
		// A group first seen, or CONSUME_MANAGE: forwards, backwards, to
		// "nothing yet" (-1), rarely invalid or of the other kind.
		a.Type = actionlog.Reset
		a.Broadcast = a.Group == "bc"
		if r.IntN(20) == 0 {
			a.Broadcast = !a.Broadcast
		}
		gk := GroupKey{a.Subject, a.Group}
		a.LastMsgSeq = max(-1, g.cursors[gk]-1+int64(r.IntN(7))-3)
		if r.IntN(30) == 0 {
			a.LastMsgSeq = -2
		}
		if a.LastMsgSeq >= -1 && (!a.Broadcast || a.Group == "bc") {
			g.cursors[gk] = a.LastMsgSeq + 1
		}
	default:
		a.Type = actionlog.ForeverOffline
	}
	return a
}

func (g *actionGen) allConsumers() []ConsumerKey {
	var out []ConsumerKey
	for _, s := range genSubjects {
		for _, gr := range genGroups {
			for _, c := range append(slices.Clone(genConsumers), "never") {
				out = append(out, ConsumerKey{s, gr, c})
			}
		}
	}
	return out
}

func compareWithModel(t *testing.T, step int, tb *Table, m *model, keys []ConsumerKey) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: %s", step, fmt.Sprintf(format, args...))
	}
	var wantGroups []GroupKey
	for gk := range m.groups {
		wantGroups = append(wantGroups, gk)
	}
	slices.SortFunc(wantGroups, compareGroupKeys)
	if got := tb.Groups(); !slices.Equal(got, wantGroups) && !(len(got) == 0 && len(wantGroups) == 0) {
		fail("Groups %v, want %v", got, wantGroups)
	}
	var wantSkippedKeys []ConsumerKey
	for _, k := range keys {
		gk := GroupKey{k.Subject, k.Group}
		mg := m.groups[gk]
		gotMax, gotOK := tb.GroupMaxPulledMsgSeq(k.Subject, k.Group)
		if (mg != nil) != gotOK || (mg != nil && gotMax != mg.max) {
			fail("%v GroupMaxPulledMsgSeq = %d,%v", gk, gotMax, gotOK)
		}
		if b, ok := tb.IsBroadcast(k.Subject, k.Group); ok != (mg != nil) || (mg != nil && b != mg.broadcast) {
			fail("%v IsBroadcast = %v,%v", gk, b, ok)
		}
		if mg != nil {
			wantIDs := slices.Sorted(maps.Keys(mg.consumers))
			if got := tb.Consumers(k.Subject, k.Group); !slices.Equal(got, wantIDs) {
				fail("%v Consumers %v, want %v", gk, got, wantIDs)
			}
		}
		var mc *modelConsumer
		if mg != nil {
			mc = mg.consumers[k.ConsumerID]
		}
		prog, ok := tb.Consumer(k.Subject, k.Group, k.ConsumerID)
		if ok != (mc != nil) {
			fail("%v Consumer ok=%v", k, ok)
		}
		if mc == nil {
			if tb.Unacked(k.Subject, k.Group, k.ConsumerID) != nil || tb.Skipped(k.Subject, k.Group, k.ConsumerID) != nil {
				fail("%v: runs for an unknown consumer", k)
			}
			if _, ok := tb.Lookup(k.Subject, k.Group, k.ConsumerID, 0); ok {
				fail("%v: Lookup ok for an unknown consumer", k)
			}
			continue
		}
		want := ConsumerProgress{PullSeq: mc.pull, AckSeq: mc.ack, LastActive: time.UnixMilli(mc.active), Broadcast: mg.broadcast}
		if prog != want {
			fail("%v Consumer %+v, want %+v", k, prog, want)
		}
		for p := int64(-2); p <= mc.pull+2; p++ {
			gv, gok := tb.Lookup(k.Subject, k.Group, k.ConsumerID, p)
			wv, wok := m.lookup(k, p)
			if gv != wv || gok != wok {
				fail("%v Lookup(%d) = %d,%v want %d,%v", k, p, gv, gok, wv, wok)
			}
		}
		wantUnacked := sortedPairs(mc.entries, func(p int64) bool { return p > mc.ack && p <= mc.pull })
		if got := expand(tb.Unacked(k.Subject, k.Group, k.ConsumerID)); !slices.Equal(got, wantUnacked) {
			fail("%v Unacked %v, want %v", k, got, wantUnacked)
		}
		wantSkipped := sortedPairs(mc.skipped, func(int64) bool { return true })
		if got := expand(tb.Skipped(k.Subject, k.Group, k.ConsumerID)); !slices.Equal(got, wantSkipped) {
			fail("%v Skipped %v, want %v", k, got, wantSkipped)
		}
		if len(wantSkipped) > 0 {
			wantSkippedKeys = append(wantSkippedKeys, k)
		}
	}
	slices.SortFunc(wantSkippedKeys, compareConsumerKeys)
	if got := tb.ConsumersWithSkipped(); !slices.Equal(got, wantSkippedKeys) {
		fail("ConsumersWithSkipped %v, want %v", got, wantSkippedKeys)
	}
}

// TestAgainstModel applies random action streams to a Table and to the naive
// model and compares every accessor, swapping the table for its
// Marshal/Unmarshal copy at random points (which must marshal identically).
func TestAgainstModel(t *testing.T) {
	seeds := 200
	steps := 600
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		m := newModel()
		g := &actionGen{r: r, m: m, cursors: map[GroupKey]int64{}, now: 1_700_000_000_000}
		keys := g.allConsumers()
		tb := New()
		for step := range steps {
			a := g.next()
			tb.Apply(a)
			m.apply(a)
			if r.IntN(30) == 0 { // the broker re-delivering skipped messages
				k := keys[r.IntN(len(keys))]
				got := expand(tb.TakeSkipped(k.Subject, k.Group, k.ConsumerID))
				var want []pair
				if mg := m.groups[GroupKey{k.Subject, k.Group}]; mg != nil {
					if mc := mg.consumers[k.ConsumerID]; mc != nil {
						want = sortedPairs(mc.skipped, func(int64) bool { return true })
						clear(mc.skipped)
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: TakeSkipped %v, want %v", seed, step, got, want)
				}
			}
			if r.IntN(25) == 0 {
				b := tb.Marshal()
				cp, err := Unmarshal(b)
				if err != nil {
					t.Fatalf("seed %d step %d: Unmarshal: %v", seed, step, err)
				}
				if b2 := cp.Marshal(); !bytes.Equal(b, b2) {
					t.Fatalf("seed %d step %d: re-marshal differs", seed, step)
				}
				tb = cp
			}
			if step%10 == 0 || step == steps-1 {
				compareWithModel(t, step, tb, m, keys)
			}
		}
	}
}
