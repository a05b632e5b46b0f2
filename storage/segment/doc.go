// Package segment stores a log as fixed-size, memory-mapped segment files,
// the base of every log in the storage engine (message, consumer and action
// logs).
//
// A segment file is named by the log offset of its first byte, 20 decimal
// digits zero-padded (QMQ's naming), and is preallocated to the segment size
// when created, so writes through the mapping never extend the file (no
// SIGBUS on a full disk, no metadata change per write). Appends never straddle
// two segments: when a record does not fit, the rest of the segment is handed
// to Config.Filler (the owner's end-of-file record) and a new segment starts.
//
// Concurrency: one writer (Append, serialized by the caller) and any number of
// readers. Readers get zero-copy Views into the mapping; a View pins its
// segment, so deleting a segment (retention, Truncate, Close) only unlinks it
// and marks it retired, and the last Release unmaps it. Segments are mapped
// lazily on first access; UnmapIdle releases the mappings of sealed segments
// nobody has read since the previous call.
//
// Durability: Flush makes everything appended so far durable: an fsync of
// each segment written since the last flush (through vfs.File.Sync, so
// CrashFS sees it), and of the directory when segments were created. On Linux
// fsync also writes back pages dirtied through the mapping (one page cache),
// so no msync precedes it; elsewhere the mapping is msync'ed first. After
// Open nothing is assumed durable, so the first Flush syncs every segment.
// Content is not validated here: the owner scans after Open and calls
// Truncate at the end of its last valid record; Truncate durably zeroes what
// follows (punching a hole where the file system can) so that a later crash
// cannot bring old bytes back behind new records.
package segment
