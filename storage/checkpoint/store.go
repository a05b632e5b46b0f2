package checkpoint

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/storage/vfs"
)

// File name prefixes (QMQ's) of the two kinds of checkpoint.
const (
	MessageKind = "message-checkpoint"
	ActionKind  = "action-checkpoint"
)

// DefaultRetain is QMQ's checkpoint.retain.count default, used when a save
// is given a retain count below 1.
const DefaultRetain = 5

// ErrCorrupt is wrapped by Load* when checkpoint files exist but none of them
// is valid. Starting without a checkpoint would replay from offset 0 and, if
// retention already removed the head of the log, restart every subject's
// sequence at 0, so the caller has to decide rather than be told "none".
var ErrCorrupt = errors.New("no valid checkpoint")

// save writes data atomically as the next file of kind in dir and prunes the
// oldest files beyond retain. Saves of one kind must not run concurrently:
// they share the temporary file name.
func save(fs vfs.FS, dir, kind string, data []byte, retain int) error {
	if retain < 1 {
		retain = DefaultRetain
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save %s: create directory %s: %w", kind, dir, err)
	}
	versions, err := listVersions(fs, dir, kind)
	if err != nil {
		return fmt.Errorf("save %s: %w", kind, err)
	}
	var next uint64
	if len(versions) > 0 {
		next = versions[len(versions)-1].n + 1
	}

	tmp := filepath.Join(dir, kind+".tmp")
	if err := writeSynced(fs, tmp, data); err != nil {
		_ = fs.Remove(tmp) // best effort: a stale tmp is overwritten by the next save anyway
		return fmt.Errorf("save %s: %w", kind, err)
	}
	final := filepath.Join(dir, fileName(kind, next))
	if err := fs.Rename(tmp, final); err != nil {
		_ = fs.Remove(tmp)
		return fmt.Errorf("save %s: rename %s to %s: %w", kind, tmp, final, err)
	}
	// Until the directory is synced the rename may be lost by a power failure;
	// only then is the new checkpoint durable and may older ones go.
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("save %s: sync directory %s: %w", kind, dir, err)
	}

	versions = append(versions, version{n: next, name: filepath.Base(final)})
	if len(versions) <= retain {
		return nil
	}
	var errs []error
	for _, v := range versions[:len(versions)-retain] {
		p := filepath.Join(dir, v.name)
		if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		errs = append(errs, fmt.Errorf("sync directory %s: %w", dir, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("save %s: %s written, pruning old checkpoints failed: %w", kind, final, errors.Join(errs...))
	}
	return nil
}

func writeSynced(fs vfs.FS, path string, data []byte) error {
	f, err := fs.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// load tries the files of kind from the newest to the oldest and stops at
// the first one parse accepts. found is false with a nil error only when no
// file of kind exists.
func load(fs vfs.FS, dir, kind string, parse func([]byte) error) (found bool, err error) {
	versions, err := listVersions(fs, dir, kind)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("load %s: %w", kind, err)
	}
	if len(versions) == 0 {
		return false, nil
	}
	var errs []error
	for _, v := range slices.Backward(versions) {
		p := filepath.Join(dir, v.name)
		data, err := readFile(fs, p)
		if err == nil {
			err = parse(data)
		}
		if err == nil {
			return true, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return false, fmt.Errorf("load %s: %w: %w", kind, ErrCorrupt, errors.Join(errs...))
}

func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return data, nil
}

type version struct {
	n    uint64
	name string
}

// listVersions returns every <kind>.<n> file in dir, by ascending n.
// Other names (the temporary file, QMQ's <uuid>.tmp, other kinds) are ignored.
func listVersions(fs vfs.FS, dir, kind string) ([]version, error) {
	entries, err := fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	prefix := kind + "."
	var versions []version
	for _, e := range entries {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, prefix)
		if !ok || e.IsDir() || !allDigits(digits) {
			continue
		}
		v, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		versions = append(versions, version{n: v, name: name})
	}
	slices.SortFunc(versions, func(a, b version) int {
		if a.n != b.n {
			return cmp.Compare(a.n, b.n)
		}
		return strings.Compare(a.name, b.name)
	})
	return versions, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func fileName(kind string, version uint64) string {
	return fmt.Sprintf("%s.%020d", kind, version)
}
