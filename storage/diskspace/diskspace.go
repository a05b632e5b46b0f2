package diskspace

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/qmq-go/qmq/storage/vfs"
)

// ErrFull matches every *FullError with errors.Is.
var ErrFull = errors.New("disk full")

// FullError is a write refused for lack of disk space: the file system said
// ENOSPC (or EDQUOT), or the free space fell below the broker's reserve.
type FullError struct {
	Path   string // the directory that needed the space
	Free   int64  // bytes free when measured; -1: unknown
	Total  int64  // size of the file system; -1: unknown
	Needed int64  // bytes the write needed, or the reserve the free space fell below
	What   string // what needed them, e.g. "a new message-log segment (messagelog.segment.size)"
	Err    error  // the file system's error; nil for a refusal below the reserve
}

func (e *FullError) Error() string { return "disk full: " + e.Detail() }

// Detail is the error without its "disk full: " prefix: where, how much is
// free, how much was needed and what for.
func (e *FullError) Detail() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %s free", e.Path, Bytes(e.Free))
	if e.Total >= 0 {
		fmt.Fprintf(&b, " of %s", Bytes(e.Total))
	}
	fmt.Fprintf(&b, ", needs %s", Bytes(e.Needed))
	if e.What != "" {
		fmt.Fprintf(&b, " for %s", e.What)
	}
	if e.Total >= 0 && e.Needed > e.Total {
		b.WriteString("; the whole file system is smaller than that: lower the setting or give the store a larger volume")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

func (e *FullError) Unwrap() error { return e.Err }

// IsNoSpace reports whether err is the file system running out of space:
// ENOSPC, or EDQUOT (a quota is a full disk for this user).
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Wrap returns err as a *FullError when it is the file system running out of
// space (measuring what is free at path now), and err unchanged otherwise.
func Wrap(fs vfs.FS, err error, path string, needed int64, what string) error {
	if err == nil || !IsNoSpace(err) {
		return err
	}
	var fe *FullError
	if errors.As(err, &fe) {
		return err
	}
	fe = &FullError{Path: path, Free: -1, Total: -1, Needed: needed, What: what, Err: err}
	if u, uerr := fs.Usage(path); uerr == nil {
		fe.Free, fe.Total = u.Free, u.Total
	}
	return fe
}

// Bytes formats n for people: "512 B", "63.2 MiB", "1.0 GiB"; "?" if negative.
func Bytes(n int64) string {
	if n < 0 {
		return "?"
	}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB", "PiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
