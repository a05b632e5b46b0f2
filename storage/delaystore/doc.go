// Package delaystore is the delay server's storage engine: it keeps
// messages scheduled for any time up to two years ahead and hands them out
// when due (reference §4). Everything here is below the network: the
// server receives messages and calls Append, a sender loops on Due, Read
// and MarkDispatched.
//
// # Directory layout under Config.Root
//
//	segment.scale.minute   the bucket scale in minutes, written on first use;
//	                       a different SegmentScale is refused afterwards
//	message_log/           the WAL: every received message (segment files
//	                       named by their first offset, storage/segment)
//	schedule_log/<yyyyMMddHHmm>/  one bucket per SegmentScale span of schedule
//	                       time (UTC start), each a sparse segment log of its own
//	  pending.counts       the bucket's pending messages per subject (see
//	                       Pending counts); only buckets beyond the window
//	dispatch_log/          which entries were delivered or cancelled
//	checkpoint/replay.checkpoint  how far the message log was replayed
//
// The message log and the dispatch log are offset-addressed and replicated
// byte for byte (ReadRaw/AppendRaw, raw.go). The buckets are derived: a
// replay copies each message-log record into the bucket of its schedule
// time, so a slave rebuilds its own, and old message-log segments can be
// deleted once replayed.
//
// # Message record (message log and buckets; big-endian)
//
//	magic u32 0xDE1A7001 | attr u8 (0 message, 1 EOF) | size u32 (whole record) |
//	crc u32 | scheduleTime i64 (unix ms) | sequence i64 |
//	subjectLen u16 | subject | messageIdLen u16 | messageId | payload
//
// crc is CRC-32C of attr, size and every byte after the crc field, so a torn
// or zeroed sector anywhere in a record is detected. The payload is the
// producer's message exactly as received. The sequence is the record's
// offset in the message log: unique, increasing, and identical on replicas,
// with nothing to recover after a crash; a message-log record whose sequence
// is not its offset is invalid. A bucket holds verbatim copies of the
// message-log records, in sequence order. A record that does not fit the
// rest of a segment is preceded by an EOF record (13 bytes: the header with
// size 13) and the rest of the segment is zero; a tail shorter than 13
// bytes is just zero.
//
// # Dispatch record (32 bytes, big-endian)
//
//	magic u16 0xD15B | kind u8 (1 dispatched, 2 cancelled) | 0 u8 |
//	crc u32 (CRC-32C of bytes 0..3 and 8..31) |
//	sequence i64 | scheduleTime i64 | recordedAt i64 (unix ms)
//
// Segment sizes are multiples of 32, so records never straddle segments
// and the log needs no filler. An all-zero record ends the log.
//
// # Replay checkpoint
//
// Text, written to a temporary file, fsynced and renamed:
//
//	qmq-delay-replay 1
//	replayed <message-log offset>
//	bucket <id> <end> <lastSeq> <done 0|1>     one line per bucket
//	#crc32:<IEEE CRC-32 of the lines above, 8 hex digits>
//
// Bucket id is the bucket's start in unix ms divided by the scale. Before a
// checkpoint is written every bucket appended to since the last one is
// fsynced, so each end is durable. done marks a past bucket whose entries
// were all dispatched: the next Open does not scan it.
//
// # Recovery (Open)
//
// The message log is scanned from the segment holding the replayed offset
// and cut at its first invalid record (durably zeroing the rest); each
// bucket is validated from its checkpointed end (from 0 if it is not in the
// checkpoint) and cut likewise; the dispatch log is scanned whole and cut,
// collecting the dispatched and cancelled sequences of buckets still to be
// loaded. Then the message log is replayed from the checkpoint: a record is
// copied unless its bucket already holds its sequence (buckets are in
// sequence order, so a record at or below the bucket's last sequence was
// copied before the crash). Finally every bucket starting before
// now+LoadAhead is loaded into the wheel, without the collected sequences.
// An unreadable checkpoint only costs time: every bucket is rescanned.
//
// # Pending counts (counts.go, countsfile.go)
//
// The store counts, per subject, the messages scheduled and not yet
// dispatched or cancelled in the whole store (Subjects, Stats.Pending),
// not only the loaded window: each bucket keeps its counts per subject
// (and the earliest schedule time, exact until the message holding it is
// dispatched or cancelled) and the store their sums. They move when the
// replay writes a record to a bucket (a sequence already in the bucket's
// skip set counts as removed instead), when MarkDispatched records an
// entry (its subject is read from its record in the bucket: the wheel
// keeps no subject, so its entries stay 32 bytes), when Cancel records one,
// and when a slave applies a replicated dispatch record (the subject is
// read from the message log at the record's sequence, or found in the
// bucket once retention deleted that).
//
// Counts are saved, not rebuilt: rebuilding means reading every record of
// every bucket up to two years ahead at each Open, which the loaded window
// was designed to avoid (a million messages a month out are 150 MB read).
// So each bucket beyond the loaded window has a counts file:
//
//	qmq-delay-pending 1
//	end <bucket end> lastseq <sequence> removed <count>
//	<pending> <earliest ms> <exact 0|1> <quoted subject>   one line per subject
//	#crc32:<IEEE CRC-32 of the lines above, 8 hex digits>
//
// It says: the records before end (the last with sequence lastseq) hold
// these pending messages, removed of them having dispatch records. It is
// rewritten with the checkpoint, after the bucket flush (so end is
// durable) and after a dispatch-log flush that follows the copy of the
// counts (so every dispatch record it reflects is durable), at most every
// countsSaveEvery (5 s) per bucket while it changes and at Close; through a
// rename, without fsync: a lost or torn file costs a scan, never a wrong
// count. Open uses a bucket's file only if it is intact, its end is within
// the recovered bucket and removed equals the dispatch records the
// dispatch log holds for sequences up to lastseq: the records the file
// reflects were durable before it was written, so the log holds them all,
// and equal numbers mean the same set (a crash after the file leaves more,
// never others); it then counts the records after end
// (a kill -9 leaves at most 5 s of appends there), and otherwise scans the
// whole bucket. Buckets in the loaded window have no file: the scan that
// loads them counts them. A truncation removes every counts file.
//
// # Truncation (truncate.go)
//
// TruncateLogs cuts a closed store's message log and dispatch log at a
// former master's takeover point, with the bucket records whose sequence
// is at or past the message-log cut and the checkpoint marks that describe
// them. A synced marker (truncate.pending under Root) announces the cut
// first and goes last; Open finishes a cut it finds announced, so a crash
// leaves the old store or the cut one.
//
// # Durability
//
// With FlushSync, Append returns after an fsync of the message log and
// after the replay into the buckets (and the wheel); MarkDispatched and
// Cancel after an fsync of the dispatch log. Otherwise a background flusher
// fsyncs both logs every FlushInterval and then replays. Only durable
// message-log records are replayed, so a bucket never holds a record a
// crash can take back. Buckets themselves are fsynced before each
// checkpoint (every second and at Close); what a crash takes from them
// after the checkpoint is replayed again. Append writes a request's records
// with one write per segment, and the replay each bucket's share with one
// write (segment.Log.AppendBatch): the end moves only after the write, so a
// record is visible to readers, flushes and the replay only once written.
//
// # The window and the wheel
//
// A loader owned by the Store (stopped by Close) loads each bucket into the
// wheel (services/delay/wheel) when its start comes within LoadAhead of
// now; replay puts records of loaded buckets into the wheel at once. Due
// pops entries whose time has come; they are handed out once per process
// and come back after a restart until MarkDispatched records them.
//
// # Retention (only with DeleteExpired)
//
// A bucket is deleted ScheduleCleanAfter after its end once all of its
// entries are dispatched or cancelled (renamed to <name>.deleted first, so a
// crash never leaves half a bucket). A dispatch-log segment is deleted once
// DispatchLogKeep has passed since its last record and no bucket it refers
// to remains: a bucket always goes before the records saying which of its
// entries were delivered, so a restart never delivers them again. A
// message-log segment is deleted MessageLogRetention after its last write
// once fully replayed (its messages live on in the buckets).
//
// # Limits
//
// A bucket outside the window is closed a minute after its last append
// (and at Open), so open files and mappings follow the buckets in use, not
// the up to 17,520 (hourly) or 210,240 (5-minute) buckets of two years;
// writes spread evenly over all of them would keep them all open, and
// reopening costs a Truncate at the known end. Sealed segments are unmapped
// when idle. Cancel scans the buckets on disk and blocks replay meanwhile. The
// wheel keeps the loaded window in memory at about 32 bytes per entry; a
// bucket is loaded whole, so SegmentScale bounds the memory a busy hour
// needs. Open scans the whole dispatch log and keeps the sequences of
// buckets it still has to load in a set until they are loaded (its size
// follows DispatchLogKeep and the dispatch rate). The pending counts take
// about 100 bytes per subject present in a bucket, in memory and in the
// bucket's counts file. Two stores cannot share one prometheus Registerer.
package delaystore
