package delaystore

import "time"

// Stats describes the store.
type Stats struct {
	// Scheduled counts the entries of the loaded window not yet dispatched
	// or cancelled: in the wheel plus handed out by Due and not yet marked.
	Scheduled int64
	// Pending counts every message of the store not yet dispatched or
	// cancelled, in the window or beyond it (up to two years ahead);
	// Subjects how many subjects they belong to (Store.Subjects lists them).
	Pending  int64
	Subjects int
	InWheel  int
	InFlight int64
	// LoadedBuckets are the buckets in the wheel's window; Buckets all on disk.
	LoadedBuckets, Buckets int
	MessageLogEnd          int64
	DispatchLogEnd         int64
	// Replayed is the message-log offset replayed into the schedule buckets.
	Replayed int64
	// OldestDueLateness is how late the earliest due entry still in the
	// wheel is (0 if none is due).
	OldestDueLateness time.Duration
}

// Stats returns the store's counts.
func (s *Store) Stats() Stats {
	st := Stats{MessageLogEnd: s.msgs.WrotePosition(), DispatchLogEnd: s.disp.WrotePosition()}
	now := s.now()
	s.mu.Lock()
	st.InWheel = s.wheel.Len()
	st.InFlight = s.inflight
	st.Scheduled = int64(st.InWheel) + s.inflight
	st.Pending, st.Subjects = s.pendingTotal, len(s.totals)
	if next, ok := s.wheel.Next(); ok && next <= now {
		st.OldestDueLateness = time.Duration(now-next) * time.Millisecond
	}
	s.mu.Unlock()
	s.replayMu.Lock()
	loaded, replayed := s.loadedUpTo, s.replayed
	s.replayMu.Unlock()
	st.Replayed = replayed
	s.bmu.RLock()
	st.Buckets = len(s.buckets)
	for id := range s.buckets {
		if id <= loaded {
			st.LoadedBuckets++
		}
	}
	s.bmu.RUnlock()
	return st
}
