// Package storage is the broker's storage engine, shared by the real-time
// broker, the delay server and slaves. It follows QMQ's design
// (../shared/design/qmq-reference.md §2):
//
//   - one append-only message log for every subject (storage/messagelog), whose
//     records carry the per-subject sequence so everything else can be rebuilt
//     from it;
//   - per-subject consumer logs (storage/consumerlog): fixed-width entries
//     mapping a sequence to its message-log offset, built asynchronously by
//     replaying the message log from a checkpoint;
//   - an action log (storage/actionlog) of PULL, RANGE_ACK and FOREVER_OFFLINE
//     records, replayed into pull logs and consumer progress (storage/pulllog);
//   - checkpoints written atomically (storage/checkpoint).
//
// Logs live in fixed-size mmap'ed segment files (storage/segment) reached
// through a small file-system seam (storage/vfs) that tests use to inject
// errors and simulate power loss.
//
// Directory layout under store.root:
//
//	messagelog/<20-digit base offset>     message log segments
//	consumerlog/<subject>/<base offset>   consumer log segments, per subject
//	actionlog/<base offset>               action log segments
//	checkpoint/message-checkpoint.<n>     newest checkpoint.retain.count kept
//	checkpoint/action-checkpoint.<n>
package storage
