package consumerlog

// A message checkpoint records every subject's end. Reading them all
// (EachMaxSequence) is O(subjects) in the dispatcher's goroutine: with
// 33,000 subjects a capture stalled dispatch for 20–120 ms. The store reads
// them all once and from then on only the ends that moved, which it merges
// into the picture it keeps; each log puts itself on the Manager's list the
// first time its end moves after a capture.

// markChanged puts s on the Manager's list of moved ends unless it is
// there already: one atomic load per put otherwise.
func (s *subjectLog) markChanged() {
	if s.changed.Load() || s.changed.Swap(true) {
		return
	}
	s.m.changesMu.Lock()
	s.m.changes = append(s.m.changes, s)
	s.m.changesMu.Unlock()
}

// EachChangedMaxSequence calls fn with the largest sequence of every
// subject whose end moved (a put, a truncation) since the previous call,
// in no order, and starts a new list. Subjects whose log holds nothing are
// left out, as EachMaxSequence leaves them out. A put that races the call
// is reported by this call or by the next.
func (m *Manager) EachChangedMaxSequence(fn func(subject string, maxSeq int64)) {
	for _, s := range m.takeChanges() {
		if !s.onDisk.Load() {
			continue
		}
		if next, _ := s.bounds(); next > 0 {
			fn(s.subject, next-1)
		}
	}
}

// ResetChanges empties the list of moved ends, for a caller about to read
// every end with EachMaxSequence.
func (m *Manager) ResetChanges() { m.takeChanges() }

// takeChanges empties the list of moved ends and returns it, each log's
// flag cleared before its end is read: a put after this lists it again, so
// the next call reports its end.
func (m *Manager) takeChanges() []*subjectLog {
	m.changesMu.Lock()
	logs := m.changes
	m.changes = nil
	m.changesMu.Unlock()
	for _, s := range logs {
		s.changed.Store(false)
	}
	return logs
}
