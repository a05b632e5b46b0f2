package storage

import (
	"context"
	"syscall"
	"time"
)

// runRetention deletes expired segments every log.retention.check.interval.seconds
// and writes an action checkpoint at least every CheckpointMaxAge.
func (s *Store) runRetention(ctx context.Context) {
	retention := time.NewTicker(s.cfg.RetentionCheckInterval)
	defer retention.Stop()
	cp := time.NewTicker(s.cfg.CheckpointMaxAge)
	defer cp.Stop()
	lastActionEnd := s.actions.WrotePosition()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cp.C:
			if end := s.actions.WrotePosition(); end != lastActionEnd {
				if err := s.saveActionCheckpoint(); err != nil {
					s.log.Error("action checkpoint failed", "error", err)
				} else {
					lastActionEnd = end
				}
			}
		case now := <-retention.C:
			s.applyRetention(now)
		}
	}
}

// applyRetention deletes whole segments older than their retention. With
// KeepUnacked, message-log segments holding messages a consumer group still
// has to ack are kept, unless the disk is fuller than DiskMaxUsedRatio.
func (s *Store) applyRetention(now time.Time) {
	if !s.cfg.DeleteExpired {
		return
	}
	// Message log: the expired prefix of segments (never the active one).
	segs := s.msgs.Segments()
	var expiredEnd int64 = -1
	kept := 0
	for i, seg := range segs {
		if i == len(segs)-1 || !seg.ModTime.Before(now.Add(-s.cfg.MessageLogRetention)) {
			break
		}
		expiredEnd = seg.BaseOffset + seg.Size
	}
	if expiredEnd > 0 {
		deleteBefore := expiredEnd
		if s.cfg.KeepUnacked {
			if protect, ok := s.oldestUnackedOffset(); ok && protect < deleteBefore {
				if used, err := diskUsedRatio(s.cfg.Root); err == nil && used > s.cfg.DiskMaxUsedRatio {
					s.m.retentionForced.Inc()
					s.log.Warn("disk above disk.max.used.ratio: deleting expired segments that still hold unacked messages",
						"used", used, "disk.max.used.ratio", s.cfg.DiskMaxUsedRatio, "unacked_from_offset", protect)
				} else {
					deleteBefore = protect
					for _, seg := range segs {
						if seg.BaseOffset+seg.Size <= expiredEnd && seg.BaseOffset+seg.Size > protect {
							kept++
						}
					}
				}
			}
		}
		if n, err := s.msgs.DeleteSegmentsBefore(deleteBefore); err != nil {
			s.log.Error("delete expired message-log segments", "error", err)
		} else if n > 0 {
			s.m.retentionDeleted.WithLabelValues("messagelog").Add(float64(n))
			s.log.Info("deleted expired message-log segments", "count", n, "before_offset", deleteBefore)
		}
	}
	s.m.retentionKept.Set(float64(kept))

	if n, err := s.clogs.DeleteBefore(now.Add(-s.cfg.ConsumerLogRetention)); err != nil {
		s.log.Error("delete expired consumer-log segments", "error", err)
	} else if n > 0 {
		s.m.retentionDeleted.WithLabelValues("consumerlog").Add(float64(n))
	}

	// Action log: only below the last action checkpoint (older actions live in it).
	actionSegs := s.actions.Segments()
	var actionBefore int64 = -1
	for i, seg := range actionSegs {
		if i == len(actionSegs)-1 || !seg.ModTime.Before(now.Add(-s.cfg.PullLogRetention)) {
			break
		}
		actionBefore = seg.BaseOffset + seg.Size
	}
	if actionBefore > 0 {
		if err := s.saveActionCheckpoint(); err != nil {
			s.log.Error("action checkpoint before action-log retention", "error", err)
			return
		}
		if n, err := s.actions.DeleteSegmentsBefore(actionBefore); err != nil {
			s.log.Error("delete expired action-log segments", "error", err)
		} else if n > 0 {
			s.m.retentionDeleted.WithLabelValues("actionlog").Add(float64(n))
		}
	}
}

// oldestUnackedOffset is the lowest message-log offset of a message some
// consumer group has not acked yet (pulled and unacked, or not pulled yet).
func (s *Store) oldestUnackedOffset() (int64, bool) {
	var lowest int64 = -1
	for subject, seq := range s.oldestUnackedSequences() {
		if seq > s.clogs.MaxSequence(subject) {
			continue // the group has everything
		}
		if seq < s.clogs.MinSequence(subject) {
			seq = s.clogs.MinSequence(subject)
		}
		e, ok, err := s.clogs.Get(subject, seq)
		if err != nil || !ok {
			continue
		}
		if lowest < 0 || e.Offset < lowest {
			lowest = e.Offset
		}
	}
	return lowest, lowest >= 0
}

// diskUsedRatio is the used fraction of the file system holding dir.
func diskUsedRatio(dir string) (float64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	total := float64(st.Blocks) * float64(st.Bsize)
	if total == 0 {
		return 0, nil
	}
	free := float64(st.Bavail) * float64(st.Bsize)
	return 1 - free/total, nil
}

// oldestUnackedSequences maps each subject with consumer groups to the lowest
// message sequence one of its groups still needs: the first pulled-but-unacked
// message of any consumer, or the group's next unpulled message.
func (s *Store) oldestUnackedSequences() map[string]int64 {
	out := map[string]int64{}
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	for _, g := range s.table.Groups() {
		if bc, _ := s.table.IsBroadcast(g.Subject, g.Group); bc {
			continue // broadcast consumers do not ack for others to wait on
		}
		need := int64(-1)
		if maxPulled, ok := s.table.GroupMaxPulledMsgSeq(g.Subject, g.Group); ok {
			need = maxPulled + 1
		}
		for _, c := range s.table.Consumers(g.Subject, g.Group) {
			for _, r := range s.table.Unacked(g.Subject, g.Group, c) {
				if need < 0 || r.FirstMsgSeq < need {
					need = r.FirstMsgSeq
				}
			}
		}
		if need < 0 {
			continue
		}
		if cur, ok := out[g.Subject]; !ok || need < cur {
			out[g.Subject] = need
		}
	}
	return out
}
