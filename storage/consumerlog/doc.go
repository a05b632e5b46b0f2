// Package consumerlog keeps the per-subject consumer logs: for each subject
// an array of fixed-width units, one per message sequence, giving the
// message's place in the message log, so that a pull finds sequence N with
// one read at offset N*UnitSize (QMQ's "consume log", reference §2.3).
//
// Each subject has its own storage/segment log under
// <store.root>/consumerlog/<escaped subject>/ (see escapeSubject for the
// escaping), opened lazily on first use, so a broker with many subjects
// pays for a subject only when it is written or read.
//
// # Writing
//
// The owner builds the logs by replaying the message log, one Put per
// message. Put appends when the sequence is the next one, fills skipped
// sequences with blank units when it is ahead, and ignores sequences the log
// already has, so replaying an overlap is harmless. Every advance closes the
// channel returned by Changed, which is how long-polling pulls learn of new
// messages without a goroutine per waiter.
//
// # Recovery
//
// Segments are preallocated with zeros and entries are never zero (see
// unit.go), so on open the end of a subject's log is the end of its last
// non-zero unit. It is found with a binary search over the last segment
// (O(log n) reads, not a scan of hundreds of megabytes), followed by a short
// backward step over any trailing unit that a crash tore.
//
// That search trusts what was flushed; what was not flushed may come back
// torn, partly zero, or missing. The owner therefore, after loading the
// message checkpoint, calls TruncateAfter(subject, checkpoint max sequence)
// for every subject (-1 for subjects the checkpoint does not list; this is
// cheap for subjects not yet opened: it is applied when they are) and
// replays the message log from the checkpoint offset. The checkpoint is only
// saved after Flush, so everything it covers is intact.
//
// Retention is by segment modification time (DeleteBefore); the owner
// applies consumerlog.retention.hours.
package consumerlog
