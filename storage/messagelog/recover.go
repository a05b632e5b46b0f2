package messagelog

import (
	"bytes"
	"fmt"
)

// recover validates the log from a safe starting point, truncates at the
// first invalid record and derives each subject's next sequence.
func (l *Log) recover(start Start) error {
	for subject, maxSeq := range start.MaxSequences {
		next := maxSeq + 1
		l.nextSeq[subject] = &next
	}
	segs := l.seg.Segments()
	if len(segs) == 0 {
		if start.Offset > 0 {
			// Nothing on disk but a checkpoint: continue where it ends.
			return l.seg.SetStart(start.Offset)
		}
		return nil
	}
	// Scan from the start of the segment holding min(checkpoint, second to
	// last segment): starting at a segment boundary means a damaged
	// checkpoint offset can never make us truncate valid records.
	from := min(start.Offset, segs[max(len(segs)-2, 0)].BaseOffset)
	first := 0
	for first+1 < len(segs) && segs[first+1].BaseOffset <= from {
		first++
	}
	pos := segs[first].BaseOffset
	scanned, messages := int64(0), 0
	for _, s := range segs[first:] {
		v, err := l.seg.Read(s.BaseOffset, int(s.Size))
		if err != nil {
			return fmt.Errorf("recover message log %s: read segment %s: %w", l.cfg.Dir, s.Path, err)
		}
		b := v.Bytes()
		p := 0
		var bad error
		for bad == nil && len(b)-p >= MinRecordSize {
			rec, n, err := decode(b[p:], true)
			if err != nil {
				bad = err
				break
			}
			switch rec.Attr {
			case AttrEOF:
				n = len(b) - p
			case AttrMessage:
				messages++
				next := rec.Sequence + 1
				if q := l.nextSeq[string(rec.Subject)]; q != nil {
					*q = max(*q, next)
				} else {
					l.nextSeq[string(rec.Subject)] = &next
				}
			}
			p += n
		}
		if bad != nil {
			end := s.BaseOffset + int64(p)
			torn := !bytes.Equal(b[p:min(p+64, len(b))], make([]byte, min(64, len(b)-p)))
			v.Release()
			scanned += int64(p)
			if torn {
				l.log.Warn("message log: truncating torn or invalid tail", "dir", l.cfg.Dir, "offset", end, "reason", bad)
			}
			l.log.Info("message log recovered", "dir", l.cfg.Dir, "from", segs[first].BaseOffset, "end", end,
				"scanned_bytes", scanned, "messages", messages)
			if err := l.seg.Truncate(end); err != nil {
				return fmt.Errorf("recover message log %s: %w", l.cfg.Dir, err)
			}
			return l.syncRecovered()
		}
		v.Release()
		scanned += s.Size
		pos = s.BaseOffset + s.Size
	}
	// Every segment is full of valid records.
	if err := l.seg.Truncate(pos); err != nil {
		return fmt.Errorf("recover message log %s: %w", l.cfg.Dir, err)
	}
	return l.syncRecovered()
}

// syncRecovered makes the recovered log durable before anything is appended
// to it: a killed predecessor may have left records only in the page cache,
// and new records must not become durable behind a hole. Segments that are
// not dirty cost a cheap fsync each.
func (l *Log) syncRecovered() error {
	if err := l.seg.Flush(); err != nil {
		return fmt.Errorf("recover message log %s: %w", l.cfg.Dir, err)
	}
	return nil
}
