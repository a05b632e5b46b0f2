package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// ErrStaleHandle is returned by Sync on a file opened before the last Crash:
// its file was replaced, so syncing it must not count as making anything durable.
var ErrStaleHandle = errors.New("crashfs: file handle predates the last Crash")

// CrashOptions chooses what a simulated power loss keeps of the data and
// directory changes that were not synced. The zero value keeps nothing unsynced.
type CrashOptions struct {
	// TornTail keeps a random prefix (in sectors) of each file's unsynced
	// changes: writes reached the disk in order but stopped somewhere.
	TornTail bool
	// ReorderedTail keeps each unsynced sector independently with probability
	// 1/2 (write-back of dirty pages happens in any order). It wins over TornTail.
	ReorderedTail bool
	// ZeroedTail zeroes a random sector-aligned range of each file's unsynced
	// region (blocks allocated, data never written), sparing sectors that
	// held synced data (sector writes are atomic).
	ZeroedTail bool
	// UnsyncedDirOps keeps a random prefix of each directory's create, remove
	// and rename operations since its last SyncDir (a journal commits in order).
	UnsyncedDirOps bool
	// SectorSize is the unit a disk writes atomically; 0 means 512.
	SectorSize int
}

// CrashFS wraps a real file system (normally under a test's temporary
// directory) and simulates power loss.
//
// Model. Every file touched through CrashFS is a node with a durable content:
// its content at the last File.Sync (read back from the file, so bytes written
// through a mapping count once they are in the page cache), or its content when
// CrashFS first saw it for files that existed before. Each directory has a
// durable listing, updated by SyncDir, and the ordered list of entry operations
// since then. Directories themselves (MkdirAll) are treated as durable.
//
// Crash rewrites every touched directory to its durable listing (plus a prefix
// of the later operations with UnsyncedDirOps) and every file in it to its
// durable content plus what CrashOptions keeps of the unsynced changes. Files
// are replaced by new inodes (write a temporary file, rename it over), so
// handles and mappings opened before the crash no longer reach them: a store
// that was "running" at the crash can be closed afterwards without changing
// the post-crash state. Files CrashFS never touched are left alone.
type CrashFS struct {
	base FS

	mu    sync.Mutex
	epoch uint64
	live  map[string]*crashNode // current path -> node, for every touched file
	dirs  map[string]*crashDir  // by directory path
}

type crashNode struct {
	durable []byte // content at the last sync, trailing zeros trimmed
	size    int64  // durable size
}

type crashDir struct {
	durable map[string]*crashNode // base name -> node
	ops     []crashDirOp          // since the last SyncDir, in order
}

// crashDirOp sets entry name to node (nil: the entry was removed).
type crashDirOp struct {
	name string
	node *crashNode
}

// NewCrashFS wraps base; see CrashFS.
func NewCrashFS(base FS) *CrashFS {
	return &CrashFS{base: base, live: map[string]*crashNode{}, dirs: map[string]*crashDir{}}
}

func (c *CrashFS) dir(path string) *crashDir {
	d := c.dirs[path]
	if d == nil {
		d = &crashDir{durable: map[string]*crashNode{}}
		c.dirs[path] = d
	}
	return d
}

// adopt starts tracking an existing file that CrashFS has not seen: what is
// there now counts as durable. It returns nil if the file does not exist.
func (c *CrashFS) adopt(path string) (*crashNode, error) {
	if n := c.live[path]; n != nil {
		return n, nil
	}
	data, size, err := readFile(c.base, path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n := &crashNode{durable: trimZeros(data), size: size}
	c.live[path] = n
	c.dir(filepath.Dir(path)).durable[filepath.Base(path)] = n
	return n, nil
}

// OpenFile opens name. Write-only opens are upgraded to read-write because
// Sync reads the file back.
func (c *CrashFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	path := filepath.Clean(name)
	if flag&(os.O_RDONLY|os.O_WRONLY|os.O_RDWR) == os.O_WRONLY {
		flag = flag&^os.O_WRONLY | os.O_RDWR
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.adopt(path)
	if err != nil {
		return nil, err
	}
	f, err := c.base.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	if n == nil { // created by this open
		n = &crashNode{}
		c.live[path] = n
		d := c.dir(filepath.Dir(path))
		d.ops = append(d.ops, crashDirOp{name: filepath.Base(path), node: n})
	}
	return &crashFile{File: f, fs: c, node: n, epoch: c.epoch}, nil
}

func (c *CrashFS) Remove(name string) error {
	path := filepath.Clean(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.adopt(path); err != nil {
		return err
	}
	if err := c.base.Remove(path); err != nil {
		return err
	}
	if _, ok := c.live[path]; ok {
		delete(c.live, path)
		d := c.dir(filepath.Dir(path))
		d.ops = append(d.ops, crashDirOp{name: filepath.Base(path)})
	}
	return nil
}

func (c *CrashFS) Rename(oldpath, newpath string) error {
	from, to := filepath.Clean(oldpath), filepath.Clean(newpath)
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.adopt(from)
	if err != nil {
		return err
	}
	if _, err := c.adopt(to); err != nil {
		return err
	}
	if err := c.base.Rename(from, to); err != nil {
		return err
	}
	if n == nil { // a directory or something we cannot track
		return nil
	}
	delete(c.live, from)
	c.live[to] = n
	fd := c.dir(filepath.Dir(from))
	fd.ops = append(fd.ops, crashDirOp{name: filepath.Base(from)})
	td := c.dir(filepath.Dir(to))
	td.ops = append(td.ops, crashDirOp{name: filepath.Base(to), node: n})
	return nil
}

func (c *CrashFS) MkdirAll(dir string, perm os.FileMode) error { return c.base.MkdirAll(dir, perm) }
func (c *CrashFS) ReadDir(dir string) ([]os.DirEntry, error)   { return c.base.ReadDir(dir) }
func (c *CrashFS) Stat(name string) (os.FileInfo, error)       { return c.base.Stat(name) }
func (c *CrashFS) Usage(path string) (Usage, error)            { return c.base.Usage(path) }

func (c *CrashFS) SyncDir(dir string) error {
	path := filepath.Clean(dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.base.SyncDir(path); err != nil {
		return err
	}
	d := c.dir(path)
	applyDirOps(d.durable, d.ops)
	d.ops = nil
	return nil
}

func applyDirOps(listing map[string]*crashNode, ops []crashDirOp) {
	for _, op := range ops {
		if op.node == nil {
			delete(listing, op.name)
		} else {
			listing[op.name] = op.node
		}
	}
}

type crashFile struct {
	File
	fs    *CrashFS
	node  *crashNode
	epoch uint64
}

// Sync fsyncs the file and records its whole content as durable.
func (f *crashFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.epoch != f.fs.epoch {
		return fmt.Errorf("sync %s: %w", f.Name(), ErrStaleHandle)
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	data, size, err := readAll(f.File)
	if err != nil {
		return fmt.Errorf("crashfs: snapshot %s: %w", f.Name(), err)
	}
	f.node.durable, f.node.size = trimZeros(data), size
	return nil
}

// Crash simulates a power loss; see CrashFS. Open handles are not closed, but
// they refer to replaced files from now on.
func (c *CrashFS) Crash(rng *rand.Rand, opts CrashOptions) error {
	if opts.SectorSize <= 0 {
		opts.SectorSize = 512
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Read every live file's current content before changing anything.
	current := make(map[*crashNode][]byte, len(c.live))
	for path, n := range c.live {
		data, _, err := readFile(c.base, path)
		if err != nil {
			return fmt.Errorf("crashfs: read %s: %w", path, err)
		}
		current[n] = data
	}
	live := map[string]*crashNode{}
	dirPaths := make([]string, 0, len(c.dirs))
	for p := range c.dirs {
		dirPaths = append(dirPaths, p)
	}
	sort.Strings(dirPaths) // deterministic for a given rng
	for _, dirPath := range dirPaths {
		d := c.dirs[dirPath]
		final := make(map[string]*crashNode, len(d.durable))
		for name, n := range d.durable {
			final[name] = n
		}
		if opts.UnsyncedDirOps && len(d.ops) > 0 {
			applyDirOps(final, d.ops[:rng.Intn(len(d.ops)+1)])
		}
		// Entries that exist now but must not after the crash.
		for path := range c.live {
			if filepath.Dir(path) == dirPath && final[filepath.Base(path)] == nil {
				if err := c.base.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("crashfs: remove %s: %w", path, err)
				}
			}
		}
		names := make([]string, 0, len(final))
		for name := range final {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			n := final[name]
			path := filepath.Join(dirPath, name)
			durable := padTo(n.durable, n.size)
			cur, ok := current[n]
			if !ok { // removed since: its unsynced changes are gone with it
				cur = durable
			}
			content := crashContent(rng, opts, durable, cur)
			if err := replaceFile(c.base, path, content); err != nil {
				return err
			}
			live[path] = &crashNode{durable: trimZeros(content), size: int64(len(content))}
		}
	}
	// Everything on disk is now durable; directories start clean.
	c.live = live
	c.dirs = map[string]*crashDir{}
	for path, n := range live {
		c.dir(filepath.Dir(path)).durable[filepath.Base(path)] = n
	}
	c.epoch++
	return nil
}

// crashContent is what a power loss leaves of a file whose durable content is
// d and whose current content is cur.
func crashContent(rng *rand.Rand, opts CrashOptions, d, cur []byte) []byte {
	if !opts.TornTail && !opts.ReorderedTail && !opts.ZeroedTail {
		return d
	}
	sector := opts.SectorSize
	size := len(d)
	if len(cur) != len(d) && rng.Intn(2) == 0 {
		size = len(cur) // the size change reached the disk
	}
	out := make([]byte, size)
	copy(out, d)
	longest := max(len(d), len(cur))
	nsec := (longest + sector - 1) / sector
	var diff []int // sectors whose content differs
	for s := 0; s < nsec; s++ {
		lo, hi := s*sector, min((s+1)*sector, longest)
		if !sameRange(d, cur, lo, hi) {
			diff = append(diff, s)
		}
	}
	if len(diff) == 0 {
		return out
	}
	keep := make([]bool, len(diff))
	switch {
	case opts.ReorderedTail:
		for i := range keep {
			keep[i] = rng.Intn(2) == 0
		}
	case opts.TornTail:
		k := rng.Intn(len(diff) + 1)
		for i := 0; i < k; i++ {
			keep[i] = true
		}
	}
	for i, s := range diff {
		if keep[i] {
			lo := s * sector
			if hi := min(lo+sector, len(out)); lo < hi {
				clear(out[lo:hi])
				if lo < len(cur) {
					copy(out[lo:hi], cur[lo:min(hi, len(cur))])
				}
			}
		}
	}
	if opts.ZeroedTail {
		// Only sectors that never held synced data can read back as zeros (an
		// allocated block never written); a sector write itself is atomic, so
		// one that held synced bytes keeps either its old or its new content.
		a := rng.Intn(len(diff))
		b := a + rng.Intn(len(diff)-a) + 1
		for _, s := range diff[a:b] {
			lo := s * sector
			hi := min(lo+sector, len(out))
			if lo < hi && sameRange(d, nil, lo, hi) {
				clear(out[lo:hi])
			}
		}
	}
	return out
}

// sameRange reports whether a and b hold the same bytes in [lo, hi), reading
// missing bytes as zeros.
func sameRange(a, b []byte, lo, hi int) bool {
	if hi <= len(a) && hi <= len(b) {
		return bytes.Equal(a[lo:hi], b[lo:hi])
	}
	for i := lo; i < hi; i++ {
		var x, y byte
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

func trimZeros(b []byte) []byte {
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return bytes.Clone(b[:end])
}

func padTo(b []byte, size int64) []byte {
	out := make([]byte, size)
	copy(out, b)
	return out
}

func readAll(f File) ([]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	data := make([]byte, fi.Size())
	n, err := f.ReadAt(data, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		if errors.Is(err, io.EOF) { // shrank meanwhile
			return data[:n], int64(n), nil
		}
		return nil, 0, err
	}
	return data, fi.Size(), nil
}

func readFile(fs FS, path string) ([]byte, int64, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return readAll(f)
}

// replaceFile gives path the given content in a new inode.
func replaceFile(fs FS, path string, content []byte) error {
	tmp := path + ".crashfs-tmp"
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("crashfs: create %s: %w", tmp, err)
	}
	// Write only up to the last non-zero byte; Truncate supplies the zeros
	// sparsely (preallocated segments are mostly zeros).
	data := bytes.TrimRight(content, "\x00")
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("crashfs: write %s: %w", tmp, err)
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		f.Close()
		return fmt.Errorf("crashfs: truncate %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("crashfs: replace %s: %w", path, err)
	}
	return nil
}
