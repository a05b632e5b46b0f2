package storage

import (
	"errors"
	"fmt"
	"os"

	"github.com/qmq-go/qmq/storage/checkpoint"
	"github.com/qmq-go/qmq/storage/pulllog"
	"github.com/qmq-go/qmq/storage/segment"
)

// Replication (services/replication) copies the message log and the action
// log byte for byte from a master's store to a slave's: the master reads
// raw bytes (ReadRaw), the slave appends them at the same offsets
// (AppendRaw). Consumer logs, the pull-log table and checkpoints are not
// copied: the slave's dispatcher replays the copied message log into its
// consumer logs, and copied actions are applied to its table as they are
// appended.
//
// A slave's store is opened like any other, with the master's segment sizes
// (raw bytes land at the master's offsets, so segments must start at the
// same offsets), and must get no other writes (Append, ApplyActions) while
// it is a slave. An empty slave log starts at its master's oldest
// replicable offset (SetLogStart), so its files equal the master's over the
// whole retained range.

// LogKind names one of the two replicated logs.
type LogKind uint8

// The replicated logs.
const (
	MessageLog LogKind = iota
	ActionLog
)

func (k LogKind) String() string {
	if k == MessageLog {
		return "message log"
	}
	return "action log"
}

// SizeKey is the configuration key of the log's segment size.
func (k LogKind) SizeKey() string {
	if k == MessageLog {
		return "messagelog.segment.size"
	}
	return "actionlog.segment.size"
}

var (
	// ErrBeforeStart is wrapped by ReadRaw for an offset older than the
	// oldest retained segment (deleted by retention).
	ErrBeforeStart = errors.New("offset is before the oldest retained segment")
	// ErrBeyondEnd is wrapped by ReadRaw for an offset past the log's end.
	ErrBeyondEnd = errors.New("offset is beyond the end of the log")
)

// RawView is a zero-copy view of raw log bytes; call Release exactly once
// when done. The zero RawView is empty.
type RawView struct {
	v segment.View
	n int
}

// Bytes returns the viewed bytes (aliasing the log's mapping until Release).
func (r RawView) Bytes() []byte {
	if r.n == 0 {
		return nil
	}
	return r.v.Bytes()[:r.n]
}

// Len is len(Bytes()).
func (r RawView) Len() int { return r.n }

// Release unpins the log segment.
func (r RawView) Release() { r.v.Release() }

// File returns the file holding Bytes() and its position there (see
// segment.View.File), or nil.
func (r RawView) File() (*os.File, int64) {
	if r.n == 0 {
		return nil, 0
	}
	return r.v.File()
}

// ReadRaw returns the log's bytes from offset (a record boundary): whole
// records of one segment, as many as fit in max bytes but at least one. An
// EOF filler ends a read; the zero tail after it is not included (the
// replica writes it). At the end of the log the view is empty. Errors wrap
// ErrBeforeStart or ErrBeyondEnd for offsets outside the log.
func (s *Store) ReadRaw(kind LogKind, offset int64, max int) (RawView, error) {
	var v segment.View
	var n int
	var err error
	if kind == MessageLog {
		v, n, err = s.msgs.ReadRaw(offset, max)
	} else {
		v, n, err = s.actions.ReadRaw(offset, max)
	}
	switch {
	case err == nil:
		return RawView{v: v, n: n}, nil
	case errors.Is(err, segment.ErrBeforeStart):
		return RawView{}, fmt.Errorf("%w: %w", ErrBeforeStart, err)
	case errors.Is(err, segment.ErrBeyondEnd):
		return RawView{}, fmt.Errorf("%w: %w", ErrBeyondEnd, err)
	}
	return RawView{}, err
}

// AppendRaw appends bytes read from a master's log with ReadRaw at offset,
// which must be this log's end. It validates every record (CRCs included)
// and appends the longest prefix made of whole records, returning the new
// end (equal to offset if b holds no whole record); invalid bytes are an
// error and nothing is appended. Copied message records raise their
// subjects' sequences and are dispatched into consumer logs by the
// dispatcher; copied actions are applied to the pull-log table.
func (s *Store) AppendRaw(kind LogKind, offset int64, b []byte) (int64, error) {
	if kind == MessageLog {
		end, err := s.msgs.AppendRaw(offset, b)
		s.disk.observe(err)
		return end, err
	}
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	end, actions, err := s.actions.AppendRaw(offset, b)
	s.disk.observe(err)
	for _, a := range actions {
		s.table.Apply(a)
	}
	return end, err
}

// LogEnd is where the log ends (its write position).
func (s *Store) LogEnd(kind LogKind) int64 {
	if kind == MessageLog {
		return s.msgs.WrotePosition()
	}
	return s.actions.WrotePosition()
}

// ActionLogEnd is the end offset of the action log.
func (s *Store) ActionLogEnd() int64 { return s.actions.WrotePosition() }

// LogAppended returns a channel closed on the log's next append (take it
// before reading LogEnd to never miss one).
func (s *Store) LogAppended(kind LogKind) <-chan struct{} {
	if kind == MessageLog {
		return s.msgs.Appended()
	}
	return s.actions.Appended()
}

// LogEmpty reports whether the log has no segment files: a new replica, or
// one that was wiped.
func (s *Store) LogEmpty(kind LogKind) bool {
	if kind == MessageLog {
		return s.msgs.Empty()
	}
	return s.actions.Empty()
}

// SetLogStart makes an empty log begin at offset, which must be one of the
// master's segment bases (ReplicaInfo's start): the first raw bytes then
// create a segment named like the master's. It fails if the log has
// segments.
func (s *Store) SetLogStart(kind LogKind, offset int64) error {
	if kind == MessageLog {
		if err := s.msgs.SetStart(offset); err != nil {
			return err
		}
		// Nothing lies below the start, so the consumer logs cover it: a
		// checkpoint written before the dispatcher notices (Close right
		// after) must still record the start, or a reopened log starts at 0.
		s.setDispatched(offset)
		return nil
	}
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	return s.actions.SetStart(offset)
}

// ReplicaInfo describes this store's logs to a replica.
type ReplicaInfo struct {
	MessageSegmentSize int64
	ActionSegmentSize  int64
	// MessageStart and ActionStart are the oldest offsets a replica can copy
	// from: segment bases from which on every segment has the configured
	// size; -1 if the active segment itself has another size (written under
	// an older segment size setting).
	MessageStart int64
	ActionStart  int64
	MessageEnd   int64
	ActionEnd    int64
}

// ReplicaInfo returns the store's segment sizes and replicable ranges.
func (s *Store) ReplicaInfo() ReplicaInfo {
	return ReplicaInfo{
		MessageSegmentSize: s.msgs.SegmentSize(),
		ActionSegmentSize:  s.actions.SegmentSize(),
		MessageStart:       s.msgs.ReplicableStart(),
		ActionStart:        s.actions.ReplicableStart(),
		MessageEnd:         s.msgs.WrotePosition(),
		ActionEnd:          s.actions.WrotePosition(),
	}
}

// ReplicaCheckpoints snapshots the store for SYNC_CHECKPOINT_REQUEST: the
// message log's end with every subject's highest sequence, and the action
// log's end with the pull-log table at that point (each consistent).
func (s *Store) ReplicaCheckpoints() (checkpoint.MessageCheckpoint, checkpoint.ActionCheckpoint) {
	off, seqs := s.msgs.SequenceSnapshot()
	s.actionMu.Lock()
	acp := checkpoint.ActionCheckpoint{Offset: s.actions.WrotePosition(), Data: s.table.Marshal()}
	s.actionMu.Unlock()
	return checkpoint.MessageCheckpoint{Offset: off, MaxSequences: seqs}, acp
}

// RaiseSequences makes each subject's next sequence at least its max
// sequence + 1 and keeps the floors in message checkpoints: a replica learns
// its master's sequences, including those of subjects it holds no message
// of, so it continues them if it is ever promoted.
func (s *Store) RaiseSequences(maxSequences map[string]int64) { s.msgs.RaiseSequences(maxSequences) }

// InstallActionCheckpoint replaces the pull-log table with the master's
// table at cp.Offset, which must be the action log's end. A replica that
// started copying from its master's oldest segment lacks the actions before
// it; installing the master's table once its copy reaches the offset of the
// master's snapshot makes its table complete. The next action checkpoint
// (periodic, or Close) persists it; a replica killed before that installs
// the master's table again after its next handshake.
func (s *Store) InstallActionCheckpoint(cp checkpoint.ActionCheckpoint) error {
	t := pulllog.New()
	if len(cp.Data) > 0 {
		var err error
		if t, err = pulllog.Unmarshal(cp.Data); err != nil {
			return fmt.Errorf("install the master's pull-log table: %w", err)
		}
	}
	s.actionMu.Lock()
	if end := s.actions.WrotePosition(); end != cp.Offset {
		s.actionMu.Unlock()
		return fmt.Errorf("install the master's pull-log table taken at action-log offset %d: this action log ends at %d", cp.Offset, end)
	}
	s.table = t
	s.actionMu.Unlock()
	return nil
}

// MessageTimestampAt returns the timestamp of the first message at or after
// offset (a record boundary); ok is false if there is none.
func (s *Store) MessageTimestampAt(offset int64) (ts int64, ok bool) {
	return s.msgs.TimestampAt(offset)
}
