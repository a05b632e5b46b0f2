package delaystore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/storage/segment"
)

// Truncation is for a former master rejoining its group as a slave after a
// failover: the bytes of its message log and dispatch log past the new
// master's takeover point were never replicated (and, with
// wait.slave.wrote, never acknowledged), and the new master has written
// other records at those offsets since. Replication copies byte for byte
// from the slave's log ends, so the tail must go before copying starts.
//
// What derives from the cut tail goes with it: schedule-bucket records
// whose sequence (their message-log offset) is at or past the cut, the
// replay checkpoint's position and the marks of the cut buckets, and every
// bucket's "done" mark (the dispatch records that made it done may be cut).
//
// Crash safety: the cut is several files, so it is announced first by a
// synced marker (truncFile) holding both ends, and the marker is removed
// only after every step is durable. Every step is idempotent, and Open
// finishes a truncation whose marker it finds before recovering anything.
// A crash therefore leaves the old store (marker not yet durable) or the
// cut one, never a bucket holding a message the message log no longer has.

// truncFile, under Config.Root, says a truncation is under way.
const truncFile = "truncate.pending"

const truncVersion = "qmq-delay-truncate 1"

// TruncateLogs cuts the message log at messageEnd and the dispatch log at
// dispatchEnd (record boundaries) in the store under cfg.Root, which must
// not be open, and drops what derives from the cut records (see above). A
// log that already ends at or before its offset is left alone. It returns
// the logs' ends before the cut.
func TruncateLogs(cfg Config, messageEnd, dispatchEnd int64) (oldMessage, oldDispatch int64, err error) {
	if err := cfg.normalize(); err != nil {
		return 0, 0, err
	}
	if messageEnd < 0 || dispatchEnd < 0 || dispatchEnd%int64(dispRecordSize) != 0 {
		return 0, 0, fmt.Errorf("delay store %s: cannot truncate at message-log offset %d and dispatch-log offset %d (the dispatch log's records are %d bytes)",
			cfg.Root, messageEnd, dispatchEnd, dispRecordSize)
	}
	// Refused cuts leave no marker: Open would refuse the store too.
	oldMessage, oldDispatch, err = inspect(cfg, messageEnd, dispatchEnd)
	if err != nil {
		return 0, 0, err
	}
	if oldMessage <= messageEnd && oldDispatch <= dispatchEnd {
		// Nothing past the ends; a marker left by a crash is Open's to finish.
		return oldMessage, oldDispatch, nil
	}
	if err := cfg.FS.MkdirAll(cfg.Root, 0o755); err != nil {
		return 0, 0, fmt.Errorf("delay store: create %s: %w", cfg.Root, err)
	}
	if err := saveFile(cfg.FS, cfg.Root, truncFile, encodeTrunc(messageEnd, dispatchEnd)); err != nil {
		return 0, 0, fmt.Errorf("delay store %s: record the truncation about to start: %w", cfg.Root, err)
	}
	if err := applyTruncation(cfg, messageEnd, dispatchEnd); err != nil {
		return oldMessage, oldDispatch, err
	}
	return oldMessage, oldDispatch, nil
}

// resumeTruncation finishes a truncation a crash interrupted (Open calls
// it first): without it the next recovery could keep bucket records of
// messages the cut message log no longer holds.
func resumeTruncation(cfg Config) error {
	path := filepath.Join(cfg.Root, truncFile)
	data, err := readFile(cfg.FS, path)
	if err != nil {
		return fmt.Errorf("delay store: read %s: %w", path, err)
	}
	if data == nil {
		return nil
	}
	msgEnd, dispEnd, err := decodeTrunc(data)
	if err != nil {
		// saveFile renames a synced file into place: a damaged marker is not
		// a crash's doing.
		return fmt.Errorf("delay store %s: %s is damaged (%v): a truncation was under way and its ends are unknown; delete store.root and let the server copy its group's master", cfg.Root, path, err)
	}
	cfg.Logger.Named("delaystore").Warn("finishing a truncation a crash interrupted", "root", cfg.Root, "message_log_end", msgEnd, "dispatch_log_end", dispEnd)
	return applyTruncation(cfg, msgEnd, dispEnd)
}

// applyTruncation runs every step of a truncation and then removes the
// marker. Each step leaves alone what is already cut.
func applyTruncation(cfg Config, messageEnd, dispatchEnd int64) error {
	fs := cfg.FS
	msgs, err := openTruncLog(cfg, messageDir, cfg.MessageSegmentSize, fillEOF, false)
	if err != nil {
		return err
	}
	defer msgs.Close()
	disp, err := openTruncLog(cfg, dispatchDir, cfg.DispatchSegmentSize, nil, false)
	if err != nil {
		return err
	}
	defer disp.Close()
	cp, cpOK := loadCheckpoint(cfg)
	// Buckets first: their records point into the message log.
	cut, err := cutBuckets(cfg, cp, messageEnd)
	if err != nil {
		return err
	}
	if err := cutLog(msgs, "message log", messageEnd, recHeaderSize, messageUnit); err != nil {
		return fmt.Errorf("delay store %s: %w", cfg.Root, err)
	}
	if err := cutLog(disp, "dispatch log", dispatchEnd, dispRecordSize, dispatchUnit); err != nil {
		return fmt.Errorf("delay store %s: %w", cfg.Root, err)
	}
	if cpOK {
		cp.replayed = min(cp.replayed, messageEnd)
		for id, m := range cp.buckets {
			if cut[id] {
				delete(cp.buckets, id) // rescanned by the next Open
				continue
			}
			m.done = false // its dispatch records may be gone
			cp.buckets[id] = m
		}
		if err := saveFile(fs, filepath.Join(cfg.Root, checkpointDir), ckptFile, encodeCheckpoint(cp)); err != nil {
			return fmt.Errorf("delay store %s: rewrite the replay checkpoint after the cut: %w", cfg.Root, err)
		}
	}
	if err := fs.Remove(filepath.Join(cfg.Root, truncFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delay store %s: remove the truncation marker: %w", cfg.Root, err)
	}
	if err := fs.SyncDir(cfg.Root); err != nil {
		return fmt.Errorf("delay store %s: sync after the truncation: %w", cfg.Root, err)
	}
	return nil
}

// inspect measures both logs' valid ends and checks that the cut points
// are record boundaries within what retention kept.
func inspect(cfg Config, messageEnd, dispatchEnd int64) (msgEnd, dispEnd int64, err error) {
	msgs, err := openTruncLog(cfg, messageDir, cfg.MessageSegmentSize, fillEOF, false)
	if err != nil {
		return 0, 0, err
	}
	defer msgs.Close()
	disp, err := openTruncLog(cfg, dispatchDir, cfg.DispatchSegmentSize, nil, false)
	if err != nil {
		return 0, 0, err
	}
	defer disp.Close()
	if msgEnd, err = validEnd(msgs, recHeaderSize, messageUnit); err != nil {
		return 0, 0, fmt.Errorf("delay store %s: message log: %w", cfg.Root, err)
	}
	if dispEnd, err = validEnd(disp, dispRecordSize, dispatchUnit); err != nil {
		return 0, 0, fmt.Errorf("delay store %s: dispatch log: %w", cfg.Root, err)
	}
	if msgEnd > messageEnd {
		if err := checkCut(msgs, "message log", messageEnd, recHeaderSize, messageUnit); err != nil {
			return 0, 0, fmt.Errorf("delay store %s: %w", cfg.Root, err)
		}
	}
	if dispEnd > dispatchEnd {
		if err := checkCut(disp, "dispatch log", dispatchEnd, dispRecordSize, dispatchUnit); err != nil {
			return 0, 0, fmt.Errorf("delay store %s: %w", cfg.Root, err)
		}
	}
	return msgEnd, dispEnd, nil
}

func openTruncLog(cfg Config, dir string, size int64, filler func([]byte), sparse bool) (*segment.Log, error) {
	if filler == nil {
		filler = func([]byte) {}
	}
	l, err := segment.Open(segment.Config{
		FS: cfg.FS, Dir: filepath.Join(cfg.Root, dir), SegmentSize: size, Filler: filler,
		Logger: cfg.Logger.Named("delaystore"), Sparse: sparse, WriteThrough: true,
	})
	if err != nil {
		return nil, fmt.Errorf("delay store %s: open %s for truncation: %w", cfg.Root, dir, err)
	}
	return l, nil
}

// validEnd is the end of l's valid records: segment.Open reports the last
// segment's capacity, not where its records stop.
func validEnd(l *segment.Log, minUnit int, unit unitFunc) (int64, error) {
	segs := l.Segments()
	if len(segs) == 0 {
		return l.WrotePosition(), nil
	}
	return scan(l, segs[len(segs)-1].BaseOffset, -1, minUnit, unit, nil)
}

// checkCut refuses an offset before the log's retained start (retention
// deleted what the slave would need) or inside a record.
func checkCut(l *segment.Log, name string, end int64, minUnit int, unit unitFunc) error {
	segs := l.Segments()
	if len(segs) == 0 {
		return nil
	}
	if end < segs[0].BaseOffset {
		return fmt.Errorf("the %s's cut point %d is before its first retained segment (%d): retention deleted what the slave would keep; delete store.root instead and let the server copy its group's master",
			name, end, segs[0].BaseOffset)
	}
	base := segs[0].BaseOffset
	for _, s := range segs {
		if s.BaseOffset <= end {
			base = s.BaseOffset
		}
	}
	got, err := scan(l, base, end, minUnit, unit, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if valid, _ := validEnd(l, minUnit, unit); got < end && got < valid {
		return fmt.Errorf("the %s's cut point %d is not a record boundary (the record at %d crosses it): the takeover point does not belong to this log", name, end, got)
	}
	return nil
}

// cutLog truncates l at end, durably, if its records go past it.
func cutLog(l *segment.Log, name string, end int64, minUnit int, unit unitFunc) error {
	valid, err := validEnd(l, minUnit, unit)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if valid <= end || l.SegmentCount() == 0 {
		return nil
	}
	if err := l.Truncate(end); err != nil {
		return fmt.Errorf("cut the %s at %d: %w", name, end, err)
	}
	if err := l.Flush(); err != nil {
		return fmt.Errorf("cut the %s at %d: %w", name, end, err)
	}
	return nil
}

// cutBuckets cuts every schedule bucket at its first record with a
// sequence at or past messageEnd (a bucket is in sequence order) and
// returns the ids of the buckets whose checkpoint marks no longer hold.
func cutBuckets(cfg Config, cp replayCheckpoint, messageEnd int64) (map[int64]bool, error) {
	dir := filepath.Join(cfg.Root, scheduleDir)
	entries, err := cfg.FS.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delay store %s: list %s: %w", cfg.Root, dir, err)
	}
	cut := map[int64]bool{}
	for _, e := range entries {
		id, ok := parseBucketName(e.Name(), cfg.SegmentScale)
		if !ok || !e.IsDir() {
			continue // a .deleted bucket is Open's to finish removing
		}
		path := filepath.Join(dir, e.Name())
		// The counts file may reflect records or dispatch records the cut
		// removes: the next Open counts the bucket afresh.
		if err := cfg.FS.Remove(filepath.Join(path, countsFile)); err == nil {
			if err := cfg.FS.SyncDir(path); err != nil {
				return nil, fmt.Errorf("delay store %s: sync %s: %w", cfg.Root, path, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("delay store %s: remove %s: %w", cfg.Root, filepath.Join(path, countsFile), err)
		}
		l, err := openTruncLog(cfg, filepath.Join(scheduleDir, e.Name()), cfg.MessageSegmentSize, fillEOF, true)
		if err != nil {
			return nil, err
		}
		from := int64(0)
		if m, ok := cp.buckets[id]; ok && m.lastSeq < messageEnd && m.end <= l.WrotePosition() {
			from = m.end // every record before it has a smaller sequence
		}
		at := int64(-1)
		_, err = scan(l, from, -1, recHeaderSize, bucketUnit, func(off int64, b []byte) error {
			if rec, _ := decodeRecord(b, false); rec.seq >= messageEnd {
				at = off
				return errStopScan
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopScan) {
			l.Close()
			return nil, fmt.Errorf("delay store %s: scan schedule bucket %s: %w", cfg.Root, path, err)
		}
		if at >= 0 {
			err = l.Truncate(at)
			if err == nil {
				err = l.Flush()
			}
			if err != nil {
				l.Close()
				return nil, fmt.Errorf("delay store %s: cut schedule bucket %s at %d: %w", cfg.Root, path, at, err)
			}
			cut[id] = true
		}
		if m, ok := cp.buckets[id]; ok && m.lastSeq >= messageEnd {
			// The mark describes records past the cut. A crash in an earlier
			// attempt may have left the first of them torn, so that the scan
			// stopped there without cutting: the next Open must not trust
			// the mark's end but rescan, and cut at the torn record.
			cut[id] = true
		}
		if err := l.Close(); err != nil {
			return nil, fmt.Errorf("delay store %s: close schedule bucket %s: %w", cfg.Root, path, err)
		}
	}
	return cut, nil
}

// loadCheckpoint reads the replay checkpoint; false when there is none or
// it is unreadable (Open then rescans every bucket anyway).
func loadCheckpoint(cfg Config) (replayCheckpoint, bool) {
	data, err := readFile(cfg.FS, filepath.Join(cfg.Root, checkpointDir, ckptFile))
	if err != nil || data == nil {
		return replayCheckpoint{buckets: map[int64]bucketMark{}}, false
	}
	cp, err := decodeCheckpoint(data)
	if err != nil {
		return replayCheckpoint{buckets: map[int64]bucketMark{}}, false
	}
	return cp, true
}

func encodeTrunc(messageEnd, dispatchEnd int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nmessage %d\ndispatch %d\n", truncVersion, messageEnd, dispatchEnd)
	fmt.Fprintf(&b, "#crc32:%08x\n", crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

func decodeTrunc(data []byte) (messageEnd, dispatchEnd int64, err error) {
	i := bytes.LastIndex(data, []byte("#crc32:"))
	if i < 0 {
		return 0, 0, errors.New("no checksum line")
	}
	sum, err := strconv.ParseUint(strings.TrimSpace(string(data[i+7:])), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(data[:i]) {
		return 0, 0, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(data[:i]), "\n"), "\n")
	if len(lines) != 3 || lines[0] != truncVersion {
		return 0, 0, fmt.Errorf("unknown version %q", lines[0])
	}
	if _, err := fmt.Sscanf(lines[1], "message %d", &messageEnd); err != nil || messageEnd < 0 {
		return 0, 0, fmt.Errorf("bad line %q", lines[1])
	}
	if _, err := fmt.Sscanf(lines[2], "dispatch %d", &dispatchEnd); err != nil || dispatchEnd < 0 {
		return 0, 0, fmt.Errorf("bad line %q", lines[2])
	}
	return messageEnd, dispatchEnd, nil
}
