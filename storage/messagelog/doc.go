// Package messagelog is the broker's message log: one append-only log for
// every subject, in QMQ's MessageLog V3 record format (reference §2.2), on
// storage/segment.
//
// Record (big-endian):
//
//	magic u32 0xA1B2C302 | attr u8 (0 message, 1 EOF filler, 2 blank) |
//	timestamp i64 | sequence i64 | subjectLen i16 | subject |
//	payloadCrc i64 | payloadSize i32 | payload
//
// The sequence is the record's per-subject consumer-log sequence, assigned at
// append time, so consumer logs can always be rebuilt by replaying this log.
// payloadCrc is the IEEE CRC-32 of the payload (the client's message exactly
// as received, minus its leading CRC), widened to 64 bits. When a record does
// not fit in the current segment, a 13-byte EOF record (magic, attr 1,
// timestamp) is written and the rest of the segment is left zero; a tail
// shorter than 13 bytes is left zero too. A blank record (attr 2, written by
// QMQ slaves) is magic, attr, timestamp and an i32 total length.
//
// Validation is stricter than QMQ's, because the CRC covers only the payload:
// a message record must have a non-empty subject without NUL bytes, a
// non-empty payload, a non-negative sequence and timestamp, and a header that
// fits the consumer log's i16 header size. With these rules a sector lost or
// zeroed inside a header is always detected (its zeros land in the subject
// or in subjectLen, or in the CRC and size fields).
//
// Recovery (Open) scans from the start of the segment holding
// min(checkpoint offset, start of the second-to-last segment), validates
// every record including its CRC, truncates at the first invalid one
// (durably zeroing what follows) and derives each subject's next sequence.
//
// Flushing: by default a background flusher fsyncs every FlushInterval
// (QMQ's policy; durability comes from the slave). With FlushSync, Append
// returns only when an fsync covers the batch; concurrent appenders share
// fsyncs (group commit, see waitFlushed).
package messagelog
