package backup

import (
	"sort"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/storage/actionlog"
)

// pullMap resolves acks to messages. A broker logs a consumer's pulls as
// ranges of its pull sequences with the message sequences they held, and
// its acks as ranges of pull sequences only (reference §2.4); the backup
// keeps each consumer's pulled ranges until they are acked, forgotten
// (FOREVER_OFFLINE) or older than ttl (rocks.db.ttl), as QMQ's backup keeps
// them in RocksDB. Broadcast consumers need no ranges: their pull sequence
// is the message sequence (§2.7).
//
// Ages are measured against the newest action seen, not the clock, so a
// backup replaying old logs keeps what it needs. It is saved with the
// follower's checkpoint (it is small: only un-acked pulls).
type pullMap struct {
	ttl       time.Duration
	consumers map[consumerKey]*consumerPulls
	newest    int64 // ms, the newest action's timestamp

	// journal holds, during a batch (begin), each touched consumer as it
	// was before (nil: absent), for rollback.
	journal       map[consumerKey]*consumerPulls
	journalNewest int64
	inBatch       bool
}

// begin starts a batch of changes that commit keeps and rollback undoes.
func (m *pullMap) begin() {
	m.inBatch = true
	m.journalNewest = m.newest
	if m.journal == nil {
		m.journal = map[consumerKey]*consumerPulls{}
	}
}

func (m *pullMap) commit() {
	m.inBatch = false
	clear(m.journal)
}

func (m *pullMap) rollback() {
	for k, c := range m.journal {
		if c == nil {
			delete(m.consumers, k)
		} else {
			m.consumers[k] = c
		}
	}
	m.newest = m.journalNewest
	m.commit()
}

// touch saves k's state before its first change in a batch.
func (m *pullMap) touch(k consumerKey) {
	if !m.inBatch {
		return
	}
	if _, ok := m.journal[k]; ok {
		return
	}
	c := m.consumers[k]
	if c == nil {
		m.journal[k] = nil
		return
	}
	cp := *c
	cp.Ranges = append([]pullRange(nil), c.Ranges...)
	m.journal[k] = &cp
}

type consumerKey struct {
	Subject, Group, ConsumerID string
}

type consumerPulls struct {
	Broadcast bool
	LastSeen  int64       // ms, the consumer's newest action
	Ranges    []pullRange // sorted by FirstPull, not overlapping
}

type pullRange struct {
	FirstPull, LastPull, FirstMsg int64
	Time                          int64 // ms, the pull's timestamp
}

func newPullMap(ttl time.Duration) *pullMap {
	return &pullMap{ttl: ttl, consumers: map[consumerKey]*consumerPulls{}}
}

func keyOf(a *actionlog.Action) consumerKey {
	return consumerKey{Subject: a.Subject, Group: a.Group, ConsumerID: a.ConsumerID}
}

func (m *pullMap) consumer(a *actionlog.Action) *consumerPulls {
	k := keyOf(a)
	m.touch(k)
	c := m.consumers[k]
	if c == nil {
		c = &consumerPulls{}
		m.consumers[k] = c
	}
	c.LastSeen = max(c.LastSeen, a.Timestamp)
	m.newest = max(m.newest, a.Timestamp)
	return c
}

// apply records a and returns the consume records it stands for, appended
// to out: one per message pulled or acked (acks whose pulls are unknown —
// before the backup's start, or expired — are counted in unresolved).
func (m *pullMap) apply(a actionlog.Action, brokerGroup string, out []backup.Record) (_ []backup.Record, unresolved int64) {
	rec := func(seq int64, act backup.Action) backup.Record {
		return backup.Record{Subject: a.Subject, BrokerGroup: brokerGroup, Sequence: seq, ConsumerGroup: a.Group,
			ConsumerID: a.ConsumerID, Action: act, Timestamp: time.UnixMilli(a.Timestamp)}
	}
	switch a.Type {
	case actionlog.Pull:
		if a.LastMsgSeq < a.FirstMsgSeq || a.LastPullSeq-a.FirstPullSeq != a.LastMsgSeq-a.FirstMsgSeq {
			return out, 0 // not a pull the broker could have made; storage/pulllog ignores it too
		}
		for s := a.FirstMsgSeq; s <= a.LastMsgSeq; s++ {
			out = append(out, rec(s, backup.ActionPull))
		}
		c := m.consumer(&a)
		if a.Broadcast {
			c.Broadcast = true
			return out, 0
		}
		c.add(pullRange{FirstPull: a.FirstPullSeq, LastPull: a.LastPullSeq, FirstMsg: a.FirstMsgSeq, Time: a.Timestamp})
	case actionlog.RangeAck:
		if a.LastPullSeq < a.FirstPullSeq || a.FirstPullSeq < 0 {
			return out, 0
		}
		c := m.consumer(&a)
		if c.Broadcast {
			for s := a.FirstPullSeq; s <= a.LastPullSeq; s++ {
				out = append(out, rec(s, backup.ActionAck))
			}
			return out, 0
		}
		found := int64(0)
		for _, r := range c.Ranges {
			lo, hi := max(r.FirstPull, a.FirstPullSeq), min(r.LastPull, a.LastPullSeq)
			for p := lo; p <= hi; p++ {
				out = append(out, rec(r.FirstMsg+(p-r.FirstPull), backup.ActionAck))
				found++
			}
		}
		// A consumer acks a contiguous prefix (reference §2.6): everything
		// up to the ack's end is done with.
		c.dropThrough(a.LastPullSeq)
		unresolved = a.LastPullSeq - a.FirstPullSeq + 1 - found
	case actionlog.ForeverOffline:
		m.touch(keyOf(&a))
		delete(m.consumers, keyOf(&a))
		m.newest = max(m.newest, a.Timestamp)
	}
	return out, unresolved
}

// add inserts r, replacing a range with the same first pull sequence (a
// replayed action after a restart).
func (c *consumerPulls) add(r pullRange) {
	i := sort.Search(len(c.Ranges), func(i int) bool { return c.Ranges[i].FirstPull >= r.FirstPull })
	if i < len(c.Ranges) && c.Ranges[i].FirstPull == r.FirstPull {
		c.Ranges[i] = r
		return
	}
	c.Ranges = append(c.Ranges, pullRange{})
	copy(c.Ranges[i+1:], c.Ranges[i:])
	c.Ranges[i] = r
}

// dropThrough forgets the pull sequences up to last.
func (c *consumerPulls) dropThrough(last int64) {
	keep := c.Ranges[:0]
	for _, r := range c.Ranges {
		switch {
		case r.LastPull <= last:
			continue
		case r.FirstPull <= last:
			r.FirstMsg += last + 1 - r.FirstPull
			r.FirstPull = last + 1
		}
		keep = append(keep, r)
	}
	clear(c.Ranges[len(keep):])
	c.Ranges = keep
}

// expire forgets pulls (and consumers) older than ttl before the newest action.
func (m *pullMap) expire() {
	if m.ttl <= 0 {
		return
	}
	cut := m.newest - m.ttl.Milliseconds()
	for k, c := range m.consumers {
		keep := c.Ranges[:0]
		for _, r := range c.Ranges {
			if r.Time >= cut {
				keep = append(keep, r)
			}
		}
		clear(c.Ranges[len(keep):])
		c.Ranges = keep
		if len(c.Ranges) == 0 && c.LastSeen < cut {
			delete(m.consumers, k)
		}
	}
}

// pending counts the ranges kept.
func (m *pullMap) pending() int {
	n := 0
	for _, c := range m.consumers {
		n += len(c.Ranges)
	}
	return n
}

// savedConsumer is a consumer's entry in the checkpoint file.
type savedConsumer struct {
	consumerKey
	consumerPulls
}

func (m *pullMap) save() []savedConsumer {
	out := make([]savedConsumer, 0, len(m.consumers))
	for k, c := range m.consumers {
		cp := *c
		cp.Ranges = append([]pullRange(nil), c.Ranges...)
		out = append(out, savedConsumer{k, cp})
	}
	return out
}

func (m *pullMap) load(saved []savedConsumer) {
	clear(m.consumers)
	for _, s := range saved {
		c := s.consumerPulls
		m.consumers[s.consumerKey] = &c
		m.newest = max(m.newest, c.LastSeen)
	}
}
