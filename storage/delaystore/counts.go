package delaystore

import (
	"math"
	"sort"
)

// Pending counts: how many messages of each subject are scheduled and not
// yet dispatched or cancelled, in the whole store (every bucket, loaded or
// not). Each bucket keeps its own per-subject counts and the store their
// sum per subject; all of it is under Store.mu. A bucket's counts are
// saved to a file of its own (countsfile.go) so that Open need not read
// the buckets beyond the loaded window to know them (see doc.go).

// subjectCount is one subject's pending messages in one bucket.
type subjectCount struct {
	n int64
	// min is the earliest schedule time among them, exact while minExact.
	// When the message holding it is dispatched or cancelled while others
	// remain, the next earliest is unknown without a scan: min then keeps
	// the removed time, a lower bound of the true earliest (which is in the
	// same bucket, so before its end).
	min      int64
	minExact bool
}

func (c *subjectCount) add(t int64) {
	if c.n == 0 {
		c.min, c.minExact = t, true
	} else if t < c.min {
		c.min = t // an earlier message is exact again
		c.minExact = true
	}
	c.n++
}

func (c *subjectCount) remove(t int64) {
	c.n--
	if c.n > 0 && t <= c.min {
		c.min, c.minExact = t, false
	}
}

// subjectTotal is one subject's pending messages in the whole store.
type subjectTotal struct {
	name string // the interned subject, shared by the buckets' maps
	n    int64
}

// intern returns the store's total of subject, creating it; mu is held.
// The lookup converts without allocating; only a new subject costs one.
func (s *Store) intern(subject []byte) *subjectTotal {
	if t := s.totals[string(subject)]; t != nil {
		return t
	}
	t := &subjectTotal{name: string(subject)}
	s.totals[t.name] = t
	return t
}

// countAdd counts a message of subject due at t as pending in b; mu is held.
func (s *Store) countAdd(b *bucket, subject []byte, t int64) {
	tot := s.intern(subject)
	c := b.subjects[tot.name]
	if c == nil {
		if b.subjects == nil {
			b.subjects = map[string]*subjectCount{}
		}
		c = &subjectCount{}
		b.subjects[tot.name] = c
	}
	c.add(t)
	tot.n++
	b.pending++
	s.pendingTotal++
	b.countsVersion++
}

// countRemove takes a pending message of subject due at t out of b's
// counts, as dispatched or cancelled; mu is held. A message the counts do
// not hold (a duplicate dispatch record) changes nothing.
func (s *Store) countRemove(b *bucket, subject []byte, t int64) {
	c := b.subjects[string(subject)]
	if c == nil || c.n <= 0 {
		return
	}
	c.remove(t)
	if c.n == 0 {
		delete(b.subjects, string(subject))
	}
	if tot := s.totals[string(subject)]; tot != nil {
		tot.n--
		if tot.n <= 0 {
			delete(s.totals, tot.name)
		}
	}
	b.pending--
	b.removed++
	s.pendingTotal--
	b.countsVersion++
}

// setCounts replaces b's counts (a bucket counted afresh by a scan, or
// read from its counts file); mu is held.
func (s *Store) setCounts(b *bucket, subjects map[string]*subjectCount, removed int64) {
	for name, c := range b.subjects {
		if tot := s.totals[name]; tot != nil {
			tot.n -= c.n
			if tot.n <= 0 {
				delete(s.totals, name)
			}
		}
		b.pending -= c.n
		s.pendingTotal -= c.n
	}
	b.subjects = nil
	for name, c := range subjects {
		if c.n <= 0 {
			continue
		}
		tot := s.intern([]byte(name))
		if b.subjects == nil {
			b.subjects = make(map[string]*subjectCount, len(subjects))
		}
		b.subjects[tot.name] = c
		tot.n += c.n
		b.pending += c.n
		s.pendingTotal += c.n
	}
	b.removed = removed
	b.countsVersion++
}

// SubjectStats is one subject's pending delay messages in the whole store.
type SubjectStats struct {
	Subject string
	// Pending counts its messages scheduled and not yet dispatched or
	// cancelled (those handed out by Due and not yet marked included).
	Pending int64
	// EarliestDue (unix ms) is the earliest schedule time among them when
	// EarliestExact; otherwise a lower bound less than one bucket
	// (segment.scale.minute) before it: the earliest one was dispatched or
	// cancelled and the next is not tracked (see subjectCount).
	EarliestDue   int64
	EarliestExact bool
}

// Subjects returns every subject with pending messages, by name. It costs
// a pass over the buckets' counts in time order until every subject's
// first bucket is seen (no disk access); mu is taken per bucket, so that
// Due and MarkDispatched do not wait for the whole pass.
func (s *Store) Subjects() []SubjectStats {
	s.bmu.RLock()
	bs := make([]*bucket, 0, len(s.buckets))
	for _, b := range s.buckets {
		bs = append(bs, b)
	}
	s.bmu.RUnlock()
	sort.Slice(bs, func(i, j int) bool { return bs[i].id < bs[j].id })
	s.mu.Lock()
	out := make([]SubjectStats, 0, len(s.totals))
	idx := make(map[string]int, len(s.totals))
	for name, t := range s.totals {
		idx[name] = len(out)
		out = append(out, SubjectStats{Subject: name, Pending: t.n, EarliestDue: math.MaxInt64})
	}
	s.mu.Unlock()
	found := 0
	for _, b := range bs {
		if found == len(out) {
			break // every subject's earliest bucket seen
		}
		s.mu.Lock()
		for name, c := range b.subjects {
			i, ok := idx[name]
			if !ok || c.n <= 0 || out[i].EarliestDue != math.MaxInt64 {
				continue
			}
			out[i].EarliestDue, out[i].EarliestExact = c.min, c.minExact
			found++
		}
		s.mu.Unlock()
	}
	for i := range out {
		if out[i].EarliestDue == math.MaxInt64 {
			// Its messages went between the two looks (delivered or
			// cancelled meanwhile): no earliest to tell.
			out[i].EarliestDue = 0
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out
}
