package delaystore

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/storage/vfs"
)

// replayCheckpoint records how far the message log was replayed into the
// schedule buckets and, per bucket, the durable end of its records at that
// point, so that Open checks only what was written since (see doc.go).
type replayCheckpoint struct {
	replayed int64
	buckets  map[int64]bucketMark
}

type bucketMark struct {
	end     int64 // bucket bytes durable and valid
	lastSeq int64 // highest sequence in the bucket, -1 if none
	done    bool  // every entry dispatched or cancelled and the bucket is past
}

const (
	ckptFile    = "replay.checkpoint"
	ckptVersion = "qmq-delay-replay 1"
	scaleFile   = "segment.scale.minute"
)

func encodeCheckpoint(cp replayCheckpoint) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nreplayed %d\n", ckptVersion, cp.replayed)
	ids := make([]int64, 0, len(cp.buckets))
	for id := range cp.buckets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		m := cp.buckets[id]
		done := 0
		if m.done {
			done = 1
		}
		fmt.Fprintf(&b, "bucket %d %d %d %d\n", id, m.end, m.lastSeq, done)
	}
	return sealText(&b)
}

// sealText ends a text file of this package (the replay checkpoint, a
// bucket's counts) with its checksum line: "#crc32:" and the IEEE CRC-32
// of the lines above, 8 hex digits.
func sealText(b *bytes.Buffer) []byte {
	fmt.Fprintf(b, "#crc32:%08x\n", crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

// openText checks a sealed text's checksum and first line (version) and
// returns its lines after the version; there is at least one.
func openText(data []byte, version string) ([]string, error) {
	i := bytes.LastIndex(data, []byte("#crc32:"))
	if i < 0 || !bytes.HasSuffix(data, []byte("\n")) {
		return nil, errors.New("no checksum line")
	}
	sum, err := strconv.ParseUint(strings.TrimSpace(string(data[i+7:])), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(data[:i]) {
		return nil, errors.New("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(data[:i]), "\n"), "\n")
	if len(lines) < 2 || lines[0] != version {
		return nil, fmt.Errorf("unknown version %q", lines[0])
	}
	return lines[1:], nil
}

func decodeCheckpoint(data []byte) (replayCheckpoint, error) {
	cp := replayCheckpoint{buckets: map[int64]bucketMark{}}
	lines, err := openText(data, ckptVersion)
	if err != nil {
		return cp, err
	}
	if _, err := fmt.Sscanf(lines[0], "replayed %d", &cp.replayed); err != nil || cp.replayed < 0 {
		return cp, fmt.Errorf("bad line %q", lines[0])
	}
	for _, l := range lines[1:] {
		var id int64
		var m bucketMark
		var done int
		if _, err := fmt.Sscanf(l, "bucket %d %d %d %d", &id, &m.end, &m.lastSeq, &done); err != nil || m.end < 0 {
			return cp, fmt.Errorf("bad line %q", l)
		}
		m.done = done == 1
		cp.buckets[id] = m
	}
	return cp, nil
}

// saveFile writes data to dir/name atomically: a synced temporary file
// renamed over it, then the directory synced.
func saveFile(fs vfs.FS, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return fs.SyncDir(dir)
}

// readFile returns dir/name's content, or nil if it does not exist.
func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// checkScale stores the bucket scale on first use and refuses another one
// later: buckets are named by their start, so a new scale would mix spans.
func checkScale(fs vfs.FS, root string, minutes int) error {
	path := filepath.Join(root, scaleFile)
	data, err := readFile(fs, path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if data == nil {
		return saveFile(fs, root, scaleFile, []byte(strconv.Itoa(minutes)+"\n"))
	}
	stored, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("%s holds %q, not a number of minutes", path, data)
	}
	if stored != minutes {
		return fmt.Errorf("delay store %s: segment.scale.minute is %d but the store was created with %d (it cannot change after first use)", root, minutes, stored)
	}
	return nil
}
