package vfs

import (
	"os"
)

// Operations ErrorFS reports to its inject function.
const (
	OpOpen     = "open"
	OpRead     = "read"
	OpWrite    = "write"
	OpSync     = "sync"
	OpRemove   = "remove"
	OpRename   = "rename"
	OpSyncDir  = "syncdir"
	OpTruncate = "truncate"
	OpMkdir    = "mkdir"
	OpReadDir  = "readdir"
	OpStat     = "stat"
	OpAllocate = "allocate" // File.Allocate: a full disk fails it with syscall.ENOSPC
	OpUsage    = "usage"
)

// NewErrorFS wraps base so that a call fails with inject(op, path) whenever
// that returns non-nil. path is the file's name as opened (for rename, the old
// path). Writes through a mapping of File.OSFile cannot be intercepted.
func NewErrorFS(base FS, inject func(op, path string) error) FS {
	return &errorFS{base: base, inject: inject}
}

type errorFS struct {
	base   FS
	inject func(op, path string) error
}

func (e *errorFS) fail(op, path string) error {
	if e.inject == nil {
		return nil
	}
	if err := e.inject(op, path); err != nil {
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	return nil
}

func (e *errorFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := e.fail(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.base.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, fs: e, name: name}, nil
}

func (e *errorFS) Remove(name string) error {
	if err := e.fail(OpRemove, name); err != nil {
		return err
	}
	return e.base.Remove(name)
}

func (e *errorFS) Rename(oldpath, newpath string) error {
	if err := e.fail(OpRename, oldpath); err != nil {
		return err
	}
	return e.base.Rename(oldpath, newpath)
}

func (e *errorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.fail(OpMkdir, dir); err != nil {
		return err
	}
	return e.base.MkdirAll(dir, perm)
}

func (e *errorFS) ReadDir(dir string) ([]os.DirEntry, error) {
	if err := e.fail(OpReadDir, dir); err != nil {
		return nil, err
	}
	return e.base.ReadDir(dir)
}

func (e *errorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.fail(OpStat, name); err != nil {
		return nil, err
	}
	return e.base.Stat(name)
}

func (e *errorFS) SyncDir(dir string) error {
	if err := e.fail(OpSyncDir, dir); err != nil {
		return err
	}
	return e.base.SyncDir(dir)
}

func (e *errorFS) Usage(path string) (Usage, error) {
	if err := e.fail(OpUsage, path); err != nil {
		return Usage{}, err
	}
	return e.base.Usage(path)
}

type errorFile struct {
	File
	fs   *errorFS
	name string
}

func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.fs.fail(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.fail(OpWrite, f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.fail(OpWrite, f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *errorFile) Sync() error {
	if err := f.fs.fail(OpSync, f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.fail(OpTruncate, f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.fs.fail(OpStat, f.name); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *errorFile) Allocate(size int64) error {
	if err := f.fs.fail(OpAllocate, f.name); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

// NewUsageFS wraps base so that Usage answers usage(path): tests make a disk
// look full, or free again, without filling one.
func NewUsageFS(base FS, usage func(path string) (Usage, error)) FS {
	return usageFS{FS: base, usage: usage}
}

type usageFS struct {
	FS
	usage func(path string) (Usage, error)
}

func (u usageFS) Usage(path string) (Usage, error) { return u.usage(path) }
