// Package actionlog is the broker's action log: the append-only record of
// every PULL, RANGE_ACK, FOREVER_OFFLINE and RESET, shared by all subjects and
// consumers, from which storage/pulllog rebuilds pull logs and consumer
// progress (QMQ's design, reference §2.4).
//
// # Records
//
// Big-endian, on storage/segment segment files (100 MiB by default) under
// <store.root>/actionlog:
//
//	magic u32 0xC3B2A100 | recordType u8 | actionType u8 | payloadSize i32 | payload | crc32 u32
//
// recordType 0 is an action; 1 is the EOF filler written when a record does
// not fit the rest of a segment (magic and type only; the rest of the segment
// is ignored, and a tail shorter than those 5 bytes is left zero and skipped
// unread); 2 is QMQ's blank record (magic, type, i32 count of bytes after the
// 9-byte header), which we read but never write. Payloads, with strings as an
// i16 length and UTF-8 bytes:
//
//	PULL             subject, group, consumerId, ts i64, broadcast u8, firstPullSeq i64, lastPullSeq i64, firstMsgSeq i64, lastMsgSeq i64
//	RANGE_ACK        subject, group, consumerId, ts i64, firstPullSeq i64, lastPullSeq i64
//	FOREVER_OFFLINE  subject, group, consumerId, ts i64
//	RESET (3, ours)  subject, group, consumerId, ts i64, broadcast u8, lastMsgSeq i64
//
// Differences from QMQ. First, action type 3, RESET, records where a
// group's cursor (a broadcast consumer's own when broadcast is 1) stands:
// the next message it pulls is lastMsgSeq+1. The broker writes it when it
// first sees a group and for CONSUME_MANAGE, so that a restarted broker or a
// promoted slave (which copies this log byte for byte) resumes the group
// there instead of at the newest message; QMQ keeps both only in memory. A
// binary without type 3 takes such a record for corruption (a slave stops
// copying there, and recovery would cut the log there): upgrade slaves
// before their master, and do not downgrade a store that has RESET records.
// Second, the trailing CRC-32 (IEEE) of the payload. QMQ ends the record
// with the payload and can only notice a torn tail when the
// payload fails to parse (its own validator carries a TODO about it); with the
// CRC, recovery cuts at the first record that is not exactly as written. The
// files are therefore not byte-compatible with QMQ's action logs. Decoding is
// strict (exact payload length, broadcast byte 0 or 1, no negative string
// lengths), so every accepted record re-encodes to the same bytes.
//
// # Log
//
// Append writes a batch as one segment reservation and publishes it at once
// (batches larger than a segment are split). Appends are serialized by a
// mutex and write straight into the mapping; a goroutine owned by the Log
// flushes every FlushInterval (500 ms, QMQ's asynchronous policy: the slave
// provides durability) and is stopped by Close. Iterate reads from any record
// boundary to the published end and can be resumed after later appends;
// Appended wakes readers (the replay into storage/pulllog).
//
// Open recovers like QMQ: records are validated from the start of the
// second-to-last segment (older segments were complete and flushed before it
// was created) and the log is truncated, durably, at the first record that
// fails: torn, zeroed, or a CRC mismatch.
package actionlog
