package storage

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/storage/checkpoint"
)

// Message checkpoints. The dispatcher, the only writer of consumer logs,
// captures what a checkpoint claims at a dispatched position; the
// checkpointer goroutine makes the logs durable up to it and writes it, so
// fsyncs never stall dispatch. A checkpoint lists every subject's end, but
// the dispatcher hands over only what changed since its previous capture
// (reading every end took it 20–120 ms at 33,000 subjects, a stall every
// checkpoint.min.interval.ms); the checkpointer keeps the whole picture
// and merges each change into it. The first capture after Open reads
// everything.

// messageCheckpoint is what a message checkpoint will claim: the message
// log is dispatched up to Offset, and each subject's consumer log holds
// exactly the sequences up to MaxSequences at that point.
type messageCheckpoint = checkpoint.MessageCheckpoint

// checkpointDelta is a capture: the message log is dispatched up to offset;
// ends holds the consumer-log ends and raised the sequence floors
// (messagelog RaiseSequences) that changed since the previous capture, or
// all of them when full.
type checkpointDelta struct {
	offset int64
	full   bool
	ends   map[string]int64
	raised map[string]int64
}

// captureDelta records the consumer logs' ends at pos: every end when all,
// otherwise those that moved since the previous capture. Only the
// dispatcher calls it, so the ends match pos exactly.
func (s *Store) captureDelta(pos int64, all bool) *checkpointDelta {
	if all {
		s.clogs.ResetChanges()
		_ = s.msgs.TakeRaisedChanges()
		return s.readEveryEnd(pos)
	}
	d := &checkpointDelta{offset: pos, ends: map[string]int64{}}
	s.clogs.EachChangedMaxSequence(func(subject string, seq int64) { d.ends[subject] = seq })
	d.raised = s.msgs.TakeRaisedChanges()
	return d
}

// readEveryEnd is a full capture at pos that leaves the lists of changes
// alone.
func (s *Store) readEveryEnd(pos int64) *checkpointDelta {
	d := &checkpointDelta{offset: pos, full: true, ends: map[string]int64{}}
	s.clogs.EachMaxSequence(func(subject string, seq int64) { d.ends[subject] = seq })
	d.raised = s.msgs.RaisedSequences()
	return d
}

// mergeNewer folds the newer capture n into d, so that d stands for both.
func (d *checkpointDelta) mergeNewer(n *checkpointDelta) {
	if n.full {
		*d = *n
		return
	}
	d.offset = n.offset
	maps.Copy(d.ends, n.ends)
	for subject, seq := range n.raised {
		if d.raised == nil {
			d.raised = map[string]int64{}
		}
		if cur, ok := d.raised[subject]; !ok || seq > cur {
			d.raised[subject] = seq
		}
	}
}

// checkpointPicture is the checkpointer's whole picture, built from the
// captures: what the next checkpoint claims.
type checkpointPicture struct {
	complete bool // a full capture was applied
	offset   int64
	// maxSeqs holds every subject's consumer-log end and, for subjects
	// without one, its sequence floor: those of the checkpoint Open
	// started from, and those a replica learned from its master for
	// subjects it holds no message of (see replica.go).
	maxSeqs map[string]int64
	// floorOnly are the subjects of maxSeqs whose value is a floor (no
	// consumer-log end): a later floor may raise them; an end replaces it.
	floorOnly map[string]bool
	// subjects are maxSeqs's keys in order, but for those added since
	// (sortedSubjects merges them): sorting every subject for every
	// checkpoint cost the checkpointer as much as the rest of the encoding.
	subjects, added []string
}

// set records seq as subject's, noting a subject new to the picture.
func (p *checkpointPicture) set(subject string, seq int64) {
	if _, ok := p.maxSeqs[subject]; !ok {
		p.added = append(p.added, subject)
	}
	p.maxSeqs[subject] = seq
}

// sortedSubjects returns every subject of the picture in order.
func (p *checkpointPicture) sortedSubjects() []string {
	if len(p.added) == 0 {
		return p.subjects
	}
	slices.Sort(p.added)
	merged := make([]string, 0, len(p.subjects)+len(p.added))
	i, j := 0, 0
	for i < len(p.subjects) || j < len(p.added) {
		if j == len(p.added) || (i < len(p.subjects) && p.subjects[i] < p.added[j]) {
			merged = append(merged, p.subjects[i])
			i++
		} else {
			merged = append(merged, p.added[j])
			j++
		}
	}
	p.subjects, p.added = merged, nil
	return p.subjects
}

// apply folds a capture into the picture, with captureCheckpoint's rule:
// a consumer log's end wins over a floor.
func (p *checkpointPicture) apply(d *checkpointDelta) {
	if d.full {
		*p = checkpointPicture{complete: true, maxSeqs: d.ends, floorOnly: map[string]bool{},
			added: slices.Collect(maps.Keys(d.ends))}
	}
	p.offset = d.offset
	if !d.full {
		for subject, seq := range d.ends {
			p.set(subject, seq)
			delete(p.floorOnly, subject)
		}
	}
	for subject, seq := range d.raised {
		if _, hasEnd := p.maxSeqs[subject]; hasEnd && !p.floorOnly[subject] {
			continue
		}
		if cur, ok := p.maxSeqs[subject]; !ok || seq > cur {
			p.set(subject, seq)
		}
		p.floorOnly[subject] = true
	}
}

// captureCheckpoint reads every consumer log's end at pos at once; Close
// calls it once the dispatcher has stopped.
func (s *Store) captureCheckpoint(pos int64) *messageCheckpoint {
	var p checkpointPicture
	p.apply(s.readEveryEnd(pos))
	return &messageCheckpoint{Offset: p.offset, MaxSequences: p.maxSeqs}
}

// requestCheckpoint hands a capture to the checkpointer, merged into the
// one it has not taken yet, if any.
func (s *Store) requestCheckpoint(d *checkpointDelta) {
	s.checkpointMu.Lock()
	if s.checkpointPending == nil {
		s.checkpointPending = d
	} else {
		s.checkpointPending.mergeNewer(d)
	}
	s.checkpointMu.Unlock()
	select {
	case s.checkpointDue <- struct{}{}:
	default: // already signalled; the checkpointer takes the merged captures
	}
}

// runCheckpointer writes the captures the dispatcher hands it, at most one
// per CheckpointMinGap.
func (s *Store) runCheckpointer(ctx context.Context) {
	var (
		last    time.Time
		picture checkpointPicture
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.checkpointDue:
		}
		if wait := s.cfg.CheckpointMinGap - time.Since(last); wait > 0 && backoff.Sleep(ctx, wait) != nil {
			return
		}
		s.checkpointMu.Lock()
		d := s.checkpointPending
		s.checkpointPending = nil
		s.checkpointMu.Unlock()
		if d == nil {
			continue
		}
		picture.apply(d)
		if !picture.complete {
			// Cannot happen: the dispatcher's first capture is full, and
			// merging keeps it full. Writing a partial picture would make
			// recovery forget subjects' ends, so nothing is written.
			s.log.Error("message checkpoint skipped: the checkpointer never had every subject's end (a bug; the checkpoint at Close is written whole)", "offset", d.offset)
			continue
		}
		last = time.Now()
		cp := messageCheckpoint{Offset: picture.offset, MaxSequences: picture.maxSeqs, Subjects: picture.sortedSubjects()}
		if err := s.saveMessageCheckpoint(&cp); err != nil {
			s.log.Error("message checkpoint failed; the next one retries", "offset", cp.Offset, "error", err)
		}
	}
}

// saveMessageCheckpoint makes the message log and consumer logs durable up
// to cp, then writes cp. The order matters: a checkpoint must never claim
// more than is on disk. The logs may hold more than cp by now (dispatch goes
// on); recovery truncates consumer logs back to cp and replays the rest.
func (s *Store) saveMessageCheckpoint(cp *messageCheckpoint) error {
	start := time.Now()
	if err := s.msgs.Flush(); err != nil {
		return err
	}
	if err := s.clogs.Flush(); err != nil {
		return err
	}
	if err := checkpoint.SaveMessage(s.fs, s.cfg.dir("checkpoint"), *cp, s.cfg.CheckpointRetain); err != nil {
		return err
	}
	s.m.checkpoints.WithLabelValues("message").Inc()
	s.log.Trace("message checkpoint saved", "offset", cp.Offset, "subjects", len(cp.MaxSequences), "took", time.Since(start))
	return nil
}
