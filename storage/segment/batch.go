package segment

import (
	"fmt"

	"github.com/qmq-go/qmq/storage/diskspace"
)

// maxBatchWrite bounds one AppendBatch write (and the scratch buffer kept
// for the next): a batch larger than this, or one crossing a segment, is
// written in several pieces. A few MiB already amortizes the system call;
// more would only keep a large buffer alive between requests.
const maxBatchWrite = 4 << 20

// AppendBatch appends len(sizes) records in order, like that many Appends,
// but with WriteThrough it encodes them into one buffer and writes them with
// one pwrite per segment they land in (per maxBatchWrite bytes), instead of
// one per record: on a busy receive path the system calls, not the copies,
// were the cost. write(i, off, b) fills record i, which will land at log
// offset off (the owner may number records by offset). Records are
// published (WrotePosition moves) only once their piece is written, so
// readers never see bytes not yet in the file.
//
// It returns how many records were appended; on error the first n are in
// the log and published, the rest are not. Callers serialize AppendBatch
// with Append.
func (l *Log) AppendBatch(sizes []int, write func(i int, off int64, b []byte)) (n int, err error) {
	for _, sz := range sizes {
		if sz <= 0 || int64(sz) > l.cfg.SegmentSize {
			return 0, fmt.Errorf("segment log %s: append of %d bytes (segment size %d)", l.cfg.Dir, sz, l.cfg.SegmentSize)
		}
	}
	if !l.cfg.WriteThrough {
		// Writes through the mapping cost no system call: nothing to batch.
		for i, sz := range sizes {
			if _, err := l.Append(sz, func(b []byte) { write(i, l.wrote.Load(), b) }); err != nil {
				return i, err
			}
		}
		return len(sizes), nil
	}
	for n < len(sizes) {
		if l.closed.Load() {
			return n, ErrClosed
		}
		if l.writeErr != nil {
			return n, l.writeErr
		}
		off := l.wrote.Load()
		s := l.active
		if s == nil || off+int64(sizes[n]) > s.end() {
			// roll fills the rest of the active segment through the mapping:
			// everything before off was written by earlier pieces already.
			if s, err = l.roll(off); err != nil {
				return n, err
			}
			off = l.wrote.Load()
		}
		if l.activeData == nil {
			data, err := s.pin()
			if err != nil {
				return n, err
			}
			s.unpin() // the active segment is never unmapped (see UnmapIdle)
			l.activeData = data
		}
		// The records that fit the rest of this segment and the write bound
		// (always at least one).
		j, total := n, 0
		for j < len(sizes) && off+int64(total+sizes[j]) <= s.end() && (j == n || total+sizes[j] <= maxBatchWrite) {
			total += sizes[j]
			j++
		}
		if cap(l.scratch) < total {
			l.scratch = make([]byte, total)
		}
		buf := l.scratch[:total:total]
		p := 0
		for k := n; k < j; k++ {
			write(k, off+int64(p), buf[p:p+sizes[k]:p+sizes[k]])
			p += sizes[k]
		}
		s.mu.Lock()
		f := s.file
		s.mu.Unlock()
		if _, err := f.WriteAt(buf, off-s.base); err != nil {
			err = diskspace.Wrap(l.fs, err, l.cfg.Dir, int64(total), "a write into a segment the file system did not preallocate")
			l.writeErr = fmt.Errorf("segment log %s: write of %d bytes at offset %d failed, appends stopped until a restart recovers the log: %w", l.cfg.Dir, total, off, err)
			return n, l.writeErr
		}
		if cap(l.scratch) > maxBatchWrite {
			l.scratch = nil // one large record or batch: do not keep its buffer
		}
		l.wrote.Store(off + int64(total))
		n = j
	}
	return n, nil
}
