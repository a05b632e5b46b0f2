// Package storage is the broker's storage engine, shared by the real-time
// broker, the delay server and slaves. It follows QMQ's design
// (QMQ reference §2; docs/architecture.md, Storage engine):
//
//   - one append-only message log for every subject (storage/messagelog), whose
//     records carry the per-subject sequence so everything else can be rebuilt
//     from it;
//   - per-subject consumer logs (storage/consumerlog): fixed-width entries
//     mapping a sequence to its message-log offset, built asynchronously by
//     replaying the message log from a checkpoint;
//   - an action log (storage/actionlog) of PULL, RANGE_ACK, FOREVER_OFFLINE
//     and RESET records, replayed into pull logs and consumer progress (storage/pulllog);
//   - checkpoints written atomically (storage/checkpoint).
//
// Logs live in fixed-size mmap'ed segment files (storage/segment) reached
// through a small file-system seam (storage/vfs) that tests use to inject
// errors and simulate power loss.
//
// Replication (replica.go) reads the message and action logs as raw bytes
// for a slave (ReadRaw) and appends them on the slave at exactly the same
// offsets (AppendRaw, validated record by record), so a slave's logs are
// byte-for-byte its master's; its consumer logs and pull logs are rebuilt by
// the same replay as after a restart. services/replication speaks the sync
// protocol on top.
//
// Performance notes, measured with BenchmarkStoreAppendSubjects (1 KiB
// messages, batches of 32, 1 vs 1,000 subjects, waiting for dispatch):
// message checkpoints run on their own goroutine, at most one per
// checkpoint.min.interval.ms (5 s), so their fsyncs (one per dirty consumer
// log, 16 at a time) never stall dispatch; consumer-log mappings are MADV_RANDOM, because read-ahead around
// first-touch faults zeroed large folios of hole per subject (ext4 has large
// folios since Linux 6.16). Together: 1,000 subjects went from 43–57 µs to
// 5.7–6.2 µs per message (1 subject: 2–4 µs) on the 2-core test machine.
// messagelog.resident.bytes bounds how much of the message log stays mapped
// into the process (RSS) behind the flush point. The message log appends with
// pwrite (segment.Config.WriteThrough) rather than copying into fresh mapped
// pages, which cost a page fault per 4 KiB: qmq bench produce rose ~60%.
//
// Directory layout under store.root:
//
//	messagelog/<20-digit base offset>     message log segments
//	consumerlog/<subject>/<base offset>   consumer log segments, per subject
//	actionlog/<base offset>               action log segments
//	checkpoint/message-checkpoint.<n>     newest checkpoint.retain.count kept
//	checkpoint/action-checkpoint.<n>
package storage
