// Package vfs is the storage engine's file-system seam. Every log reaches the
// disk through an FS so that tests can swap the operating system for
//
//   - CrashFS, which remembers what was made durable (File.Sync, FS.SyncDir)
//     and on Crash rewrites the directory to what a power loss could leave:
//     the synced content plus, optionally, a torn, reordered or zeroed part of
//     the unsynced tail, and only the directory entries that were synced;
//   - ErrorFS, which makes chosen operations fail (File.Allocate with ENOSPC
//     is a full disk), and UsageFS, which reports the free space a test
//     chooses.
//
// The seam is deliberately small: open/remove/rename/list/stat/sync, plus
// fallocate and the file system's free space. Segments
// are mmap'ed, and mmap needs a real file descriptor, so File exposes the
// underlying *os.File; writes through a mapping therefore bypass the seam,
// which CrashFS accounts for by reading file contents back at each Sync (the
// page cache holds what was written through the mapping).
package vfs
