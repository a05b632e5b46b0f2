// Package broker is the real-time broker (`qmq broker`): it stores what
// producers send and serves consumer groups from a shared cursor per
// (subject, group), following QMQ's design (qmq-reference.md §1.3,
// §2.4–§2.8). It speaks QMQ's TCP protocol, so Java clients work with it.
//
// # Lifecycle
//
// New reads broker.properties, opens the store and binds broker.port. Run
// acquires the broker's group and role from the metaserver (retrying every
// meta.retry.interval.ms, 5 s, with one log line per failure that carries the
// metaserver's explanation), refuses roles other than master (slaves come
// later), registers ONLINE, heartbeats every 10 s (locating the metaserver
// again after a failure), and serves until its context ends; then it sends
// OFFLINE (3 tries), stops serving and closes the store. Until ONLINE has
// been acknowledged SEND_MESSAGE answers every message BROKER_READ_ONLY.
//
// # Requests
//
//   - SEND_MESSAGE: the batch is decoded (CRC checked), illegal subjects
//     (empty, over 100 characters, control characters) are answered
//     SUBJECT_NOT_ASSIGNED as Java does, messages over max.message.size are
//     answered BLOCK (the Java producer does not retry BLOCK), and the rest
//     are appended as one store append. Only failures are listed.
//   - PULL_MESSAGE: see pull.go. A group seen for the first time starts at
//     the subject's next sequence (only new messages), except on retry
//     subjects (%RETRY%…) where it starts at the oldest retained message (all
//     of a retry subject is meant for its group). Known groups resume after
//     the largest sequence any of their consumers pulled. A consumer whose
//     reported last pull offset is behind the broker's gets those entries
//     again first (lost-response redelivery). Tag filters apply; filtered
//     messages advance the cursor without a pull-log entry. Broadcast
//     consumers (or an empty group) have a cursor of their own and pull
//     sequence == consumer-log sequence. Long polls wait on Store.Changed.
//     Retry subjects deliver an entry only message.retry.delay.seconds after
//     it was stored.
//   - ACK_REQUEST: a RANGE_ACK action; begin < 0 is a heartbeat.
//   - CONSUME_MANAGE: moves a group's cursor to the earliest or latest
//     message (in memory, like QMQ: after a restart the group resumes after
//     its largest pulled sequence).
//
// # Safety nets
//
// A checker runs every quarter of subscriber.offline.timeout.ms (ours;
// QMQ: 3 min fixed). A consumer not heard from (pull, ack or heartbeat) for
// that long has its pulled, unacked messages re-appended to
// %RETRY%<subject>%<group> (qmq_times incremented, subject rewritten) and
// range-acked, at most put_need_retry_message.limiter messages per second;
// entries an ack jumped over are moved the same way.
package broker
