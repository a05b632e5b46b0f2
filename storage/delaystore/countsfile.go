package delaystore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

// A bucket's counts file (countsFile in its directory) holds its pending
// counts per subject as of a bucket end, so that Open knows the counts of
// the buckets beyond the loaded window without reading them (doc.go,
// "Pending counts"). Text:
//
//	qmq-delay-pending 1
//	end <bucket end> lastseq <sequence> removed <dispatched or cancelled>
//	<pending> <earliest ms> <exact 0|1> <quoted subject>     one per subject
//	#crc32:<IEEE CRC-32 of the lines above, 8 hex digits>
const (
	countsFile    = "pending.counts"
	countsVersion = "qmq-delay-pending 1"
	// countsSaveEvery bounds how often a bucket's counts file is rewritten
	// while its counts keep changing: after a kill -9 Open scans at most
	// this much of the bucket's appends again.
	countsSaveEvery = 5 * time.Second
)

// bucketCounts is a counts file's content.
type bucketCounts struct {
	end, lastSeq, removed int64
	subjects              map[string]*subjectCount
}

func encodeCounts(c bucketCounts) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nend %d lastseq %d removed %d\n", countsVersion, c.end, c.lastSeq, c.removed)
	names := make([]string, 0, len(c.subjects))
	for name := range c.subjects {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := c.subjects[name]
		exact := 0
		if sc.minExact {
			exact = 1
		}
		fmt.Fprintf(&b, "%d %d %d %s\n", sc.n, sc.min, exact, strconv.Quote(name))
	}
	return sealText(&b)
}

func decodeCounts(data []byte) (bucketCounts, error) {
	c := bucketCounts{subjects: map[string]*subjectCount{}}
	lines, err := openText(data, countsVersion)
	if err != nil {
		return c, err
	}
	if _, err := fmt.Sscanf(lines[0], "end %d lastseq %d removed %d", &c.end, &c.lastSeq, &c.removed); err != nil || c.end < 0 || c.removed < 0 {
		return c, fmt.Errorf("bad line %q", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			return c, fmt.Errorf("bad line %q", l)
		}
		n, err1 := strconv.ParseInt(f[0], 10, 64)
		min, err2 := strconv.ParseInt(f[1], 10, 64)
		name, err3 := strconv.Unquote(f[3])
		if err1 != nil || err2 != nil || err3 != nil || n <= 0 || name == "" || (f[2] != "0" && f[2] != "1") {
			return c, fmt.Errorf("bad line %q", l)
		}
		c.subjects[name] = &subjectCount{n: n, min: min, minExact: f[2] == "1"}
	}
	return c, nil
}

// writeCountsFile replaces path's content with data through a temporary
// file and a rename, without fsync: a counts file only saves Open a scan,
// and one a crash tore or took back fails its checks (CRC, end, removed)
// and costs that scan, never a wrong count.
func writeCountsFile(fs vfs.FS, path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// saveCounts rewrites the counts files of the buckets beyond the loaded
// window whose counts changed, each at most every countsSaveEvery unless
// all is set (Close). The buckets' records up to their end are durable
// (checkpointLocked flushed them); the dispatch log is flushed after the
// counts are copied, so every dispatch record a file reflects is durable
// before the file exists. replayMu is held.
func (s *Store) saveCounts(bs []*bucket, all bool) error {
	type save struct {
		b *bucket
		c bucketCounts
		v int64
	}
	var todo []save
	now := time.Now()
	s.mu.Lock()
	for _, b := range bs {
		if b.id <= s.loadedUpTo || b.done || b.countsVersion == b.savedVersion || (!all && now.Sub(b.savedAt) < countsSaveEvery) {
			continue // loaded buckets are counted by the scan that loads them
		}
		c := bucketCounts{end: b.end, lastSeq: b.lastSeq, removed: b.removed, subjects: make(map[string]*subjectCount, len(b.subjects))}
		for name, sc := range b.subjects {
			cp := *sc
			c.subjects[name] = &cp
		}
		todo = append(todo, save{b, c, b.countsVersion})
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	if err := s.disp.Flush(); err != nil {
		return fmt.Errorf("delay store: save pending counts: flush the dispatch log: %w", err)
	}
	for _, t := range todo {
		if err := writeCountsFile(s.cfg.FS, filepath.Join(t.b.dir, countsFile), encodeCounts(t.c)); err != nil {
			return fmt.Errorf("delay store: save the pending counts of bucket %s: %w", t.b.dir, err)
		}
		t.b.savedVersion, t.b.savedAt = t.v, now
	}
	return nil
}

// initCounts counts the pending messages of the buckets beyond the loaded
// window at Open (those in it are counted by loadBucket's scan): from the
// bucket's counts file when it still describes the bucket, plus the
// records appended after it; otherwise by scanning the whole bucket. Runs
// after openDispatchLog, whose skip sets name every dispatched or
// cancelled sequence of these buckets, and before the replay.
func (s *Store) initCounts() error {
	window := s.bucketID(s.now() + s.cfg.LoadAhead.Milliseconds())
	scanned, rescanned := 0, 0
	for _, b := range s.buckets {
		if b.done || b.id <= window {
			continue
		}
		from, c := int64(0), bucketCounts{subjects: map[string]*subjectCount{}}
		fc, valid := s.readCounts(b)
		if valid {
			from, c = fc.end, fc
		} else {
			rescanned++
		}
		skip := s.skip[b.id]
		if from < b.end {
			scanned++
			l, err := s.bucketLog(b)
			if err != nil {
				return err
			}
			_, err = scan(l, from, -1, recHeaderSize, func(rb []byte, _ int64) (int, bool, error) {
				rec, err := decodeRecord(rb, false) // validated by openBuckets
				return rec.size, err == nil && rec.attr == attrEOF, err
			}, func(_ int64, rb []byte) error {
				rec, _ := decodeRecord(rb, false)
				if _, ok := skip[rec.seq]; ok {
					c.removed++
					return nil
				}
				sc := c.subjects[string(rec.subject)]
				if sc == nil {
					sc = &subjectCount{}
					c.subjects[string(rec.subject)] = sc
				}
				sc.add(rec.scheduleTime)
				return nil
			})
			if err != nil {
				return fmt.Errorf("delay store: count the pending messages of bucket %s: %w", b.dir, err)
			}
		}
		s.mu.Lock()
		s.setCounts(b, c.subjects, c.removed)
		if valid && from == b.end {
			b.savedVersion, b.savedAt = b.countsVersion, time.Now() // the file says just that
		}
		s.mu.Unlock()
	}
	if scanned > 0 {
		s.log.Info("pending counts: scanned buckets beyond the window", "scanned", scanned, "without_valid_counts_file", rescanned)
	}
	return nil
}

// readCounts returns b's counts file if it still describes b: written at
// or before the bucket's recovered end, and reflecting exactly the
// dispatch records of its sequences that the dispatch log holds (a crash
// may take back dispatch records or leave newer ones; a truncation removes
// the files).
func (s *Store) readCounts(b *bucket) (bucketCounts, bool) {
	path := filepath.Join(b.dir, countsFile)
	data, err := readFile(s.cfg.FS, path)
	if err != nil || data == nil {
		if err != nil {
			s.log.Warn("pending counts file unreadable: counting the bucket", "path", path, "error", err)
		}
		return bucketCounts{}, false
	}
	c, err := decodeCounts(data)
	if err != nil {
		s.log.Warn("pending counts file invalid: counting the bucket", "path", path, "error", err)
		return bucketCounts{}, false
	}
	if c.end > b.end || c.lastSeq > b.lastSeq {
		return bucketCounts{}, false
	}
	removed := int64(0)
	for seq := range s.skip[b.id] {
		if seq <= c.lastSeq {
			removed++
		}
	}
	if removed != c.removed {
		return bucketCounts{}, false
	}
	return c, true
}

// subjectOf returns the subject of the message with sequence seq, which
// bucket b holds: from the message log (the record is at offset seq) while
// retention kept it, else by scanning b. replayMu is held.
func (s *Store) subjectOf(b *bucket, seq int64) ([]byte, error) {
	if v, err := s.msgs.Read(seq, recHeaderSize); err == nil {
		h, size := v.Bytes(), 0
		if binary.BigEndian.Uint32(h) == recMagic && h[4] == attrMessage {
			size = int(binary.BigEndian.Uint32(h[5:]))
		}
		v.Release()
		if size > recHeaderSize {
			if v, err := s.msgs.Read(seq, size); err == nil {
				rec, err := decodeRecord(v.Bytes(), false)
				subject := bytes.Clone(rec.subject)
				v.Release()
				if err == nil && rec.seq == seq {
					return subject, nil
				}
			}
		}
	}
	l, err := s.bucketLog(b)
	if err != nil {
		return nil, err
	}
	var subject []byte
	_, err = scan(l, l.MinOffset(), -1, recHeaderSize, func(rb []byte, _ int64) (int, bool, error) {
		rec, err := decodeRecord(rb, false)
		return rec.size, err == nil && rec.attr == attrEOF, err
	}, func(_ int64, rb []byte) error {
		rec, _ := decodeRecord(rb, false)
		if rec.seq >= seq {
			if rec.seq == seq {
				subject = bytes.Clone(rec.subject)
			}
			return errStopScan
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, fmt.Errorf("find message %d in schedule bucket %s: %w", seq, b.dir, err)
	}
	if subject == nil {
		return nil, fmt.Errorf("message %d is not in schedule bucket %s", seq, b.dir)
	}
	return subject, nil
}
