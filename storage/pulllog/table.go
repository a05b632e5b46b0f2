package pulllog

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/storage/actionlog"
)

// Run maps Count consecutive pull sequences, starting at FirstPullSeq, to as
// many consecutive consumer-log sequences starting at FirstMsgSeq.
type Run struct {
	FirstPullSeq int64
	FirstMsgSeq  int64
	Count        int64
}

// LastPullSeq is the run's last pull sequence.
func (r Run) LastPullSeq() int64 { return r.FirstPullSeq + r.Count - 1 }

// LastMsgSeq is the run's last consumer-log sequence.
func (r Run) LastMsgSeq() int64 { return r.FirstMsgSeq + r.Count - 1 }

// ConsumerProgress is one consumer's position, in its own pull sequences.
type ConsumerProgress struct {
	PullSeq    int64     // last pulled pull sequence, -1 if none
	AckSeq     int64     // last acknowledged pull sequence, -1 if none
	LastActive time.Time // timestamp of the newest action seen for it
	Broadcast  bool      // the consumer's group is a broadcast group
}

// GroupKey names a consumer group of a subject.
type GroupKey struct{ Subject, Group string }

// ConsumerKey names one consumer of a group.
type ConsumerKey struct{ Subject, Group, ConsumerID string }

// Stats counts what the table holds (for metrics).
type Stats struct {
	Groups, Consumers int
	Runs, Unacked     int64 // unacked runs and the pull sequences they cover
	SkippedRuns       int64 // runs waiting in Skipped lists
}

// Table holds every consumer's pull log and progress. It is safe for
// concurrent use; Apply takes a write lock, accessors a read lock.
type Table struct {
	mu     sync.RWMutex
	groups map[GroupKey]*group
}

type group struct {
	broadcast       bool
	maxPulledMsgSeq int64 // -1 until a pull is recorded
	consumers       map[string]*consumer
}

type consumer struct {
	pullSeq, ackSeq int64
	lastActive      int64 // ms since the epoch
	// runs covers the pulled, unacknowledged pull sequences that have a
	// message, ascending, all in (ackSeq, pullSeq]. Empty for broadcast.
	runs []Run
	// skipped holds entries an acknowledgement jumped over (it started
	// beyond ackSeq+1), ascending, all <= ackSeq, until TakeSkipped.
	skipped []Run
}

// New returns an empty table.
func New() *Table {
	return &Table{groups: make(map[GroupKey]*group)}
}

// Apply applies one action, in log order. Actions that make no sense are
// ignored rather than failing replay: a PULL whose ranges are empty,
// negative or of different lengths, a RANGE_ACK with an empty or negative
// range, a RESET below -1 or of the other kind than its group, any action
// of an unknown type. See the package documentation for
// the rules on overlaps, gaps and broadcast groups.
func (t *Table) Apply(a actionlog.Action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch a.Type {
	case actionlog.Pull:
		t.applyPull(&a)
	case actionlog.RangeAck:
		t.applyAck(&a)
	case actionlog.ForeverOffline:
		if g := t.groups[GroupKey{a.Subject, a.Group}]; g != nil {
			delete(g.consumers, a.ConsumerID)
		}
	case actionlog.Reset:
		t.applyReset(&a)
	}
}

// applyReset sets a group's cursor, or a broadcast consumer's: the next
// message it pulls is a.LastMsgSeq+1.
func (t *Table) applyReset(a *actionlog.Action) {
	if a.LastMsgSeq < -1 || (a.Broadcast && a.ConsumerID == "") {
		return
	}
	g := t.groups[GroupKey{a.Subject, a.Group}]
	if g == nil {
		g = t.newGroup(a)
	} else if g.broadcast != a.Broadcast {
		return // the group's kind is fixed by its first action
	}
	if !g.broadcast {
		// Set, not raised: CONSUME_MANAGE may move a group back.
		g.maxPulledMsgSeq = a.LastMsgSeq
		return
	}
	// Broadcast: pull sequence == message sequence and nothing is
	// redelivered, so the consumer's cursor is its pull (and ack) position.
	g.maxPulledMsgSeq = max(g.maxPulledMsgSeq, a.LastMsgSeq)
	c := g.consumers[a.ConsumerID]
	if c == nil {
		c = &consumer{lastActive: a.Timestamp}
		g.consumers[strings.Clone(a.ConsumerID)] = c
	}
	c.lastActive = max(c.lastActive, a.Timestamp)
	c.pullSeq, c.ackSeq = a.LastMsgSeq, a.LastMsgSeq
}

// newGroup adds the group of a, whose kind a fixes.
func (t *Table) newGroup(a *actionlog.Action) *group {
	g := &group{broadcast: a.Broadcast, maxPulledMsgSeq: -1, consumers: make(map[string]*consumer)}
	// Keys are kept for good: clone them so they never pin a caller's
	// larger buffer (a request frame the strings may point into).
	t.groups[GroupKey{strings.Clone(a.Subject), strings.Clone(a.Group)}] = g
	return g
}

func validPull(a *actionlog.Action) bool {
	return a.FirstPullSeq >= 0 && a.FirstPullSeq <= a.LastPullSeq &&
		a.FirstMsgSeq >= 0 && a.FirstMsgSeq <= a.LastMsgSeq &&
		a.LastPullSeq-a.FirstPullSeq == a.LastMsgSeq-a.FirstMsgSeq
}

func (t *Table) applyPull(a *actionlog.Action) {
	if !validPull(a) {
		return
	}
	g := t.groups[GroupKey{a.Subject, a.Group}]
	if g == nil {
		// The group's kind is fixed by its first pull (or RESET), as in
		// QMQ's progress table.
		g = t.newGroup(a)
	}
	g.maxPulledMsgSeq = max(g.maxPulledMsgSeq, a.LastMsgSeq)
	c := g.consumers[a.ConsumerID]
	if c == nil {
		c = &consumer{pullSeq: -1, ackSeq: -1, lastActive: a.Timestamp}
		g.consumers[strings.Clone(a.ConsumerID)] = c
	}
	c.lastActive = max(c.lastActive, a.Timestamp)
	if a.LastPullSeq <= c.pullSeq {
		return // already recorded (a replayed or duplicated action)
	}
	// Pull sequences already assigned keep their first mapping.
	skip := max(0, c.pullSeq+1-a.FirstPullSeq)
	r := Run{FirstPullSeq: a.FirstPullSeq + skip, FirstMsgSeq: a.FirstMsgSeq + skip, Count: a.LastPullSeq - a.FirstPullSeq + 1 - skip}
	c.pullSeq = a.LastPullSeq
	if g.broadcast {
		return // pull sequence == message sequence: nothing to remember
	}
	c.runs = appendRun(c.runs, r)
}

// appendRun appends r, merging it into the last run when both sequences
// continue it (the usual case: one shared cursor, no filter).
func appendRun(runs []Run, r Run) []Run {
	if n := len(runs); n > 0 {
		last := &runs[n-1]
		if last.LastPullSeq()+1 == r.FirstPullSeq && last.LastMsgSeq()+1 == r.FirstMsgSeq {
			last.Count += r.Count
			return runs
		}
	}
	return append(runs, r)
}

func (t *Table) applyAck(a *actionlog.Action) {
	if a.FirstPullSeq < 0 || a.FirstPullSeq > a.LastPullSeq {
		return
	}
	g := t.groups[GroupKey{a.Subject, a.Group}]
	if g == nil {
		return
	}
	c := g.consumers[a.ConsumerID]
	if c == nil {
		return // QMQ ignores acks of consumers it has no progress for
	}
	c.lastActive = max(c.lastActive, a.Timestamp)
	if c.ackSeq >= c.pullSeq {
		return // everything pulled is acknowledged already
	}
	// Only pulled, not yet acknowledged sequences can be acknowledged: acks
	// are idempotent, and an ack beyond the last pull cannot cover messages
	// the consumer never received.
	first, last := max(a.FirstPullSeq, c.ackSeq+1), min(a.LastPullSeq, c.pullSeq)
	if first > last {
		return
	}
	c.ackSeq = last
	if g.broadcast {
		return
	}
	// Drop the acknowledged prefix; entries below first were skipped by the
	// ack and are kept for the broker to re-deliver as retry messages.
	i := 0
	for ; i < len(c.runs); i++ {
		r := c.runs[i]
		if r.FirstPullSeq > last {
			break
		}
		if r.FirstPullSeq < first {
			n := min(r.Count, first-r.FirstPullSeq)
			c.skipped = appendRun(c.skipped, Run{r.FirstPullSeq, r.FirstMsgSeq, n})
		}
		if r.LastPullSeq() > last {
			cut := last + 1 - r.FirstPullSeq
			c.runs[i] = Run{r.FirstPullSeq + cut, r.FirstMsgSeq + cut, r.Count - cut}
			break
		}
	}
	c.runs = dropFront(c.runs, i)
}

// dropFront removes runs[:i]. It copies the rest down when that costs no
// more than what was dropped (amortized O(1) per run, and a steady consumer
// reuses its array without allocating), and shrinks an array left mostly
// empty, so memory follows the number of unacked runs.
func dropFront(runs []Run, i int) []Run {
	rest := len(runs) - i
	if i >= rest {
		runs = runs[:copy(runs, runs[i:])]
	} else {
		runs = runs[i:]
	}
	if cap(runs) > 16 && len(runs) < cap(runs)/4 {
		runs = slices.Clone(runs)
	}
	return runs
}

func (t *Table) consumer(subject, group, consumerID string) (*group, *consumer) {
	g := t.groups[GroupKey{subject, group}]
	if g == nil {
		return nil, nil
	}
	return g, g.consumers[consumerID]
}

// Lookup returns the consumer-log sequence a pulled, unacknowledged pull
// sequence holds. Acknowledged sequences are forgotten. For a broadcast
// consumer it is the pull sequence itself.
func (t *Table) Lookup(subject, group, consumerID string, pullSeq int64) (msgSeq int64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	g, c := t.consumer(subject, group, consumerID)
	if c == nil || pullSeq <= c.ackSeq || pullSeq > c.pullSeq {
		return 0, false
	}
	if g.broadcast {
		return pullSeq, true
	}
	i, _ := slices.BinarySearchFunc(c.runs, pullSeq, func(r Run, p int64) int { return cmp.Compare(r.LastPullSeq(), p) })
	if i == len(c.runs) || c.runs[i].FirstPullSeq > pullSeq {
		return 0, false // a pull sequence with no message (gap in the pulls)
	}
	return c.runs[i].FirstMsgSeq + pullSeq - c.runs[i].FirstPullSeq, true
}

// Consumer returns a consumer's progress.
func (t *Table) Consumer(subject, group, consumerID string) (ConsumerProgress, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	g, c := t.consumer(subject, group, consumerID)
	if c == nil {
		return ConsumerProgress{}, false
	}
	return ConsumerProgress{PullSeq: c.pullSeq, AckSeq: c.ackSeq, LastActive: time.UnixMilli(c.lastActive), Broadcast: g.broadcast}, true
}

// GroupMaxPulledMsgSeq returns the largest consumer-log sequence any
// consumer of the group has pulled: a restarted broker resumes the group's
// shared cursor after it. ok is false for a group never pulled.
func (t *Table) GroupMaxPulledMsgSeq(subject, group string) (int64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	g := t.groups[GroupKey{subject, group}]
	if g == nil {
		return -1, false
	}
	return g.maxPulledMsgSeq, true
}

// IsBroadcast reports whether the group is a broadcast group (fixed by its
// first pull).
func (t *Table) IsBroadcast(subject, group string) (broadcast, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	g := t.groups[GroupKey{subject, group}]
	if g == nil {
		return false, false
	}
	return g.broadcast, true
}

// Unacked returns a copy of the consumer's pulled, unacknowledged entries, in
// pull order (for lost-ack redelivery and for moving an offline consumer's
// messages to its retry subject). Nil for broadcast consumers, which QMQ
// never redelivers.
func (t *Table) Unacked(subject, group, consumerID string) []Run {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, c := t.consumer(subject, group, consumerID)
	if c == nil || len(c.runs) == 0 {
		return nil
	}
	return slices.Clone(c.runs)
}

// Skipped returns a copy of the entries acknowledgements jumped over (an ack
// starting beyond AckSeq+1 acknowledges everything before it, but the
// messages in the gap were never confirmed): the broker re-appends them as
// retry messages, then calls TakeSkipped.
func (t *Table) Skipped(subject, group, consumerID string) []Run {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, c := t.consumer(subject, group, consumerID)
	if c == nil || len(c.skipped) == 0 {
		return nil
	}
	return slices.Clone(c.skipped)
}

// TakeSkipped returns the skipped entries and forgets them. After a crash the
// action log replay recreates the skipped entries of acks after the last
// checkpoint, so they may be handed out twice (at-least-once, as always).
func (t *Table) TakeSkipped(subject, group, consumerID string) []Run {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, c := t.consumer(subject, group, consumerID)
	if c == nil || len(c.skipped) == 0 {
		return nil
	}
	s := c.skipped
	c.skipped = nil
	return s
}

// ConsumersWithSkipped lists, sorted, the consumers whose Skipped is not empty.
func (t *Table) ConsumersWithSkipped() []ConsumerKey {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []ConsumerKey
	for gk, g := range t.groups {
		for id, c := range g.consumers {
			if len(c.skipped) > 0 {
				out = append(out, ConsumerKey{gk.Subject, gk.Group, id})
			}
		}
	}
	slices.SortFunc(out, compareConsumerKeys)
	return out
}

// Groups lists every group, sorted by subject then group. A group stays after
// its last consumer went forever offline: its max pulled sequence is still
// where the shared cursor resumes.
func (t *Table) Groups() []GroupKey {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]GroupKey, 0, len(t.groups))
	for gk := range t.groups {
		out = append(out, gk)
	}
	slices.SortFunc(out, compareGroupKeys)
	return out
}

// Consumers lists the consumer ids of a group, sorted.
func (t *Table) Consumers(subject, group string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	g := t.groups[GroupKey{subject, group}]
	if g == nil {
		return nil
	}
	out := make([]string, 0, len(g.consumers))
	for id := range g.consumers {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Stats counts the table's contents.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := Stats{Groups: len(t.groups)}
	for _, g := range t.groups {
		s.Consumers += len(g.consumers)
		for _, c := range g.consumers {
			s.Runs += int64(len(c.runs))
			s.SkippedRuns += int64(len(c.skipped))
			for _, r := range c.runs {
				s.Unacked += r.Count
			}
		}
	}
	return s
}

func compareGroupKeys(a, b GroupKey) int {
	return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Group, b.Group))
}

func compareConsumerKeys(a, b ConsumerKey) int {
	return cmp.Or(cmp.Compare(a.Subject, b.Subject), cmp.Compare(a.Group, b.Group), cmp.Compare(a.ConsumerID, b.ConsumerID))
}
