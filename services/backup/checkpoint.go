package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkpointName is the follower's checkpoint in store.root.
const checkpointName = "backup-follower.json"

// savedCheckpoint is the file's content: how far the store holds each log
// of the group, and the pulls still waiting for their acks at that point
// of the action log.
type savedCheckpoint struct {
	Version       int             `json:"version"`
	Group         string          `json:"group"`
	MessageOffset int64           `json:"messageOffset"`
	ActionOffset  int64           `json:"actionOffset"`
	Consumers     []savedConsumer `json:"consumers,omitempty"`
}

const checkpointVersion = 1

// checkpointFile writes the checkpoint atomically (a temporary file,
// fsync, rename, fsync of the directory): after kill -9 the file is the
// old one or the new one, never a torn one.
type checkpointFile struct {
	dir, path string
}

func newCheckpointFile(root string) (*checkpointFile, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create store.root %s for the backup's checkpoint: %w", root, err)
	}
	return &checkpointFile{dir: root, path: filepath.Join(root, checkpointName)}, nil
}

// load returns the saved checkpoint; ok is false when there is none (a
// first start).
func (c *checkpointFile) load() (cp savedCheckpoint, ok bool, err error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return savedCheckpoint{}, false, nil
	}
	if err != nil {
		return savedCheckpoint{}, false, fmt.Errorf("read the backup's checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return savedCheckpoint{}, false, fmt.Errorf("the backup's checkpoint %s is damaged (%v); to index the group again from what it retains, delete the file (entries already stored are written again, not doubled)", c.path, err)
	}
	if cp.Version != checkpointVersion {
		return savedCheckpoint{}, false, fmt.Errorf("the backup's checkpoint %s has version %d, this backup reads %d", c.path, cp.Version, checkpointVersion)
	}
	return cp, true, nil
}

func (c *checkpointFile) save(cp savedCheckpoint) error {
	cp.Version = checkpointVersion
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write the backup's checkpoint: %w", err)
	}
	_, err = fh.Write(b)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path)
	}
	if err != nil {
		return fmt.Errorf("write the backup's checkpoint %s: %w", c.path, err)
	}
	if d, err := os.Open(c.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
