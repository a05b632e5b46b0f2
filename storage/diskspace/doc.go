// Package diskspace names a full disk. The logs preallocate their segments
// (a message-log segment is 1 GiB by default), so a disk runs out of space
// mostly when a segment is created, and the error that comes back is a bare
// ENOSPC. Wrap turns it into a *FullError that says which directory, how much
// space was free and how much was needed, so that the broker can tell the
// producer and the operator what to do; errors.Is(err, ErrFull) finds it
// through any wrapping.
package diskspace
