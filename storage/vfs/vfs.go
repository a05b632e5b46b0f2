package vfs

import (
	"fmt"
	"io"
	"os"
)

// FS is the subset of file-system operations the storage engine uses.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	MkdirAll(dir string, perm os.FileMode) error
	ReadDir(dir string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir fsyncs a directory so that entries created, renamed or removed
	// in it survive a power loss.
	SyncDir(dir string) error
	// Usage reports the size and free space of the file system holding path
	// (errors.ErrUnsupported where it cannot be measured).
	Usage(path string) (Usage, error)
}

// Usage is a file system's size and the space left in it, in bytes.
type Usage struct {
	Total int64
	Free  int64 // available to the broker (statfs f_bavail: without root's reserve)
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	io.Reader
	io.Closer
	Name() string
	// Sync is fsync: content and metadata reach stable storage.
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	// Allocate reserves the blocks of [0, size) (fallocate(2), extending the
	// file if it is shorter), so that writes there cannot fail for lack of
	// space later; errors.ErrUnsupported where the file system cannot. On a
	// full disk it fails with ENOSPC.
	Allocate(size int64) error
	// OSFile returns the real file, for mmap (which needs a real descriptor).
	// Writes through a mapping bypass any wrapping FS.
	OSFile() *os.File
}

// Default returns the operating system's file system.
func Default() FS { return osFS{} }

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) OSFile() *os.File { return f.File }

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error        { return os.Rename(oldpath, newpath) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) ReadDir(dir string) ([]os.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) Stat(name string) (os.FileInfo, error)       { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return d.Close()
}
