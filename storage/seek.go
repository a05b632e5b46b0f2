package storage

import "fmt"

// seekScanLimit bounds the forward scan over blank consumer-log units
// (sequences without a message) that one probe of SeekTimestamp may do.
const seekScanLimit = 4096

// Timestamp returns when the message with sequence seq of subject was
// stored (milliseconds since the epoch, from its consumer-log entry). found
// is false for sequences without a message: never written, blank, or below
// the subject's retention-raised start.
func (s *Store) Timestamp(subject string, seq int64) (ms int64, found bool, err error) {
	e, ok, err := s.clogs.Get(subject, seq)
	if err != nil || !ok {
		return 0, false, err
	}
	return e.Timestamp, true, nil
}

// SeekTimestamp returns the sequence of subject's first message stored at
// or after ms (milliseconds since the epoch): MinSequence when every
// retained message is that new, MaxSequence+1 when none is.
//
// It binary searches the consumer log, whose timestamps are the broker's
// append times and so ascend (a clock stepped back makes the answer one of
// the positions where the time crosses ms). A blank unit takes the time of
// the next message after it.
func (s *Store) SeekTimestamp(subject string, ms int64) (int64, error) {
	lo, hi := s.MinSequence(subject), s.MaxSequence(subject)+1
	// Invariant: every message before lo is older than ms; the message at hi
	// (or the end) is at or after it.
	for lo < hi {
		mid := lo + (hi-lo)/2
		ts, at, err := s.nextTimestamp(subject, mid, hi)
		if err != nil {
			return 0, err
		}
		switch {
		case at >= hi:
			hi = mid // only blanks from mid to hi
		case ts >= ms:
			hi = mid
		default:
			lo = at + 1
		}
	}
	// lo may be a blank unit: answer the message after it.
	if _, at, err := s.nextTimestamp(subject, lo, s.MaxSequence(subject)+1); err == nil {
		lo = at
	}
	return lo, nil
}

// nextTimestamp returns the time and sequence of the first message at or
// after seq and before end; at == end when there is none.
func (s *Store) nextTimestamp(subject string, seq, end int64) (ts, at int64, err error) {
	for at = seq; at < end; at++ {
		if at-seq >= seekScanLimit {
			return 0, 0, fmt.Errorf("seek in %q: no message among %d consumer-log units from sequence %d", subject, seekScanLimit, seq)
		}
		ts, ok, err := s.Timestamp(subject, at)
		if err != nil {
			return 0, 0, fmt.Errorf("seek in %q: read sequence %d: %w", subject, at, err)
		}
		if ok {
			return ts, at, nil
		}
	}
	return 0, end, nil
}
