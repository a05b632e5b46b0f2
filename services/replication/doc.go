// Package replication copies a master broker's message log and action log,
// byte for byte, to a slave (QMQ's master/slave sync, reference §3), and a
// delay server's message log and dispatch log the same way.
//
// # Stores
//
// A Master reads and a Slave writes a store of two logs, numbered by Log:
// MessageLog (0) and SecondLog (1) (MasterStore, SlaveStore, RawView).
// Logs says what the second log is: BrokerLogs (the zero value) is the
// broker's action log, copied with sync type action=1; DelayLogs the delay
// server's dispatch log, sync type dispatch=4 (QMQ's). ForBroker adapts
// *storage.Store; services/delay adapts *delaystore.Store. The broker's
// store also hands over checkpoints (CheckpointSource, CheckpointSink)
// and message times for the lag (MessageTimestamper); a store without
// them sends empty checkpoints and its slaves ignore them. On the wire the
// second log's offset travels in the action-log fields of requests,
// heartbeats and the handshake, whatever the log.
//
// # Roles
//
// A Master serves sync.port (20882) for its store: it answers the slave's
// requests with raw log bytes, tracks the offsets the slave reports, exposes
// the slave's lag (Lag, Prometheus metrics) and lets writers wait until the
// slave has written their messages (WaitSlaveWrote, QMQ's
// wait.slave.wrote). A Slave copies into its own store: one goroutine per
// log asks for the bytes after its copy's end and appends them
// (storage.Store.AppendRaw validates every record, CRC included, so a slave
// never persists garbage), and a heartbeat goroutine reports both ends every
// second. Consumer logs, the pull-log table and checkpoints are not copied:
// the slave's store replays the copied message log into its consumer logs
// (its dispatcher follows the log) and applies copied actions to its
// pull-log table as it appends them. A slave whose master is gone can be
// promoted: its logs equal the master's and its sequences continue the
// master's.
//
// # Protocol (QMQ's, on protocol/remoting)
//
// SYNC_LOG_REQUEST (20), body syncType u8 | messageLogOffset i64 |
// actionLogOffset i64, with syncType action=1, message=2, heartbeat=3:
//
//   - message / action: the offset of that log is where the slave's copy
//     ends (QMQ's slaves send 0 for the other log). The answer is
//     size i32 | startOffset i64 | size bytes of the log from startOffset,
//     at most sync.batch.size (1 MiB; QMQ: 100000) bytes. If nothing is
//     newer the master parks the request up to message.sync.timeout.ms
//     (10 ms) and answers size 0; an append wakes it at once (QMQ re-checks
//     after the timeout).
//     Every request thereby reports how far the slave has written, which is
//     what WaitSlaveWrote waits for. The slave retries a request that fails
//     after 2 s, each with a timeout of slave.sync.timeout (3000 ms).
//   - heartbeat: both of the slave's ends; the answer is the master's ends,
//     messageLogMaxOffset i64 | actionLogMaxOffset i64, at once. The slave
//     sends one every second (QMQ's HeartbeatProcessor sleeps 1 s). QMQ's
//     master computes slaveMessageLogLag/slaveActionLogLag from it; ours
//     takes the offsets of every request.
//
// SYNC_CHECKPOINT_REQUEST (21): with an empty body (a Java slave) the answer
// is QMQ's version 1, version u8 | len i32 | message checkpoint | len i32 |
// action checkpoint, a fresh snapshot of the master in storage/checkpoint's
// formats. Our slave sends the body {2} on every connection and gets version
// 2: version 1 followed by messageSegmentSize i64 | actionSegmentSize i64 |
// messageMinOffset i64 | messageMaxOffset i64 | actionMinOffset i64 |
// actionMaxOffset i64. That is the handshake:
//
//   - the segment sizes must equal the slave's (messagelog.segment.size,
//     actionlog.segment.size): raw bytes land at the master's offsets, and a
//     segment file is named by its first offset, so both sides must roll at
//     the same offsets. A mismatch is refused with both values and the key
//     to change;
//   - an empty log (no segment file) starts at the master's min offset, the
//     base of its oldest segment (of the oldest from which on all segments
//     have the configured size), not at the checkpoint: the copy is the
//     master's whole retained range and its segment files are identical to
//     the master's;
//   - a non-empty log must end within [min, max] of the master's: one that
//     ends before the master's min (retention deleted bytes it never copied)
//     or after its max (it holds bytes the master does not) is refused with
//     the recovery: stop the slave, delete its store.root, start it (it
//     copies the master's retained range again). The master refuses such
//     requests too (BROKER_REJECT with the same explanation);
//   - the master's message checkpoint raises the slave's sequences, so that
//     subjects whose messages were all deleted before the slave copied them
//     keep their sequences if it is promoted (they are kept in the slave's
//     checkpoints);
//   - the master's action checkpoint (its offset and pull-log table) is
//     installed when the slave's action log reaches that offset: a slave
//     that started at the master's oldest segment lacks the actions before
//     it, and from then on its table equals the master's.
//
// # Authentication (ours)
//
// SYNC_AUTH (protocol.CodeSyncAuth, package syncauth) is the slave's first
// frame on every connection: with sync.secret on both sides the slave proves
// the secret with an HMAC over fresh nonces of both sides, and a master
// with a secret serves nothing (no log bytes, no checkpoint) on a
// connection that has not. A secret on one side only, or different ones,
// is refused with the same explanation on both. Without a secret on either
// side the hello alone succeeds, and a slave that sends none (older) is
// served as before. A connection that passes, and whose address
// MasterConfig.CheckSlave accepts (the broker: the metaserver's slave row
// for the group), becomes the slave's session; only the session's reports
// count towards WaitSlaveWrote and Lag. A newer session replaces the older
// one, whose connection is closed: a restarted slave reconnects while the
// master may hold its old, half-open connection until IdleTimeout, and
// refusing the new one would stall every wait.slave.wrote send that long.
// Replacing is not weaker than refusing: only a peer with the secret and
// the registered address gets a session, which is the slave itself. A
// failed handshake ends its connection, so every try costs a new
// connection and a new nonce; refusals are logged at most every 10 s.
//
// # Readers (the backup)
//
// A peer that authenticates with role syncauth.RoleBackup is a reader: its
// connection is served log bytes, the handshake and heartbeats like the
// slave's, but it never becomes the slave's session — it replaces none, and
// nothing it reports counts towards WaitSlaveWrote or Lag — whatever its
// address, so a backup (or a peer posing as one) cannot make a master
// acknowledge a send. MasterConfig.ReadersOnly makes a Master that serves
// readers only and refuses slaves: a broker slave opens its sync.port that
// way for the group's backup (services/backup, docs/backup-follower.md).
//
// # Offsets and records
//
// The master answers with whole records of one segment: as many as fit in
// sync.batch.size, but at least one (a record larger than the batch is sent
// whole, so the slave always progresses), and an EOF filler ends an answer
// without the zero tail after it (the slave writes the tail; it is zero on
// both sides). The slave requests from its log's end, so the offset it
// reports is always what it has written. Raw bytes are written through the
// same segment code as ordinary appends: a killed slave recovers its torn
// tail like any store (validation, truncation at the first bad record) and
// continues from its own end.
//
// # Start order and failures
//
// Either side may start first and either may restart at any time; nothing
// needs a manual step. A slave whose master is not reachable logs one line
// ("master X not reachable, retrying every 2s; the slave catches up when it
// appears"), then only changes of state (connected, caught up, connection
// lost, a refusal with its explanation), not every attempt. Every failure
// drops the connection and retries after RetryInterval (2 s, less up to
// half of it at random, internal/backoff). The master's
// address is given by the caller (the broker learns it from the
// metaserver); to follow another master, stop the Slave and start a new one.
//
// # wait.slave.wrote
//
// WaitSlaveWrote(ctx, end) returns once a request of the slave reports a
// message-log offset at or past end: a message copy request (QMQ counts only
// these, from a FIFO of waiting sends) or a heartbeat (which only raises the
// offset: it may have been sent before a copy request that arrived first). Callers arriving between two reports
// share one group (one channel) whose end is the largest of theirs; a report
// seals the open group and completes every group it reaches. So the cost
// does not grow with the number of callers and no goroutine is started per
// caller. If the slave is down callers wait until their context ends (QMQ:
// the group stops accepting reliable messages); the error says what the
// slave last reported and when.
//
// # Differences from QMQ, and why
//
//   - An empty slave copies the master's whole retained range instead of
//     starting at the master's checkpoint: a slave that can take over must
//     have every retained message. QMQ writes a blank record before the
//     first copied byte; ours starts its log at the master's segment base
//     (storage.Store.SetLogStart), so no filler is needed and files match.
//   - The slave does not block its start until it has caught up (QMQ waits
//     for the checkpoint offsets before serving); the broker decides.
//   - A request behind the master's retention is refused with the recovery
//     instead of being silently moved to the master's first offset (QMQ),
//     which would leave a hole in the slave.
//   - Answers hold whole records (QMQ cuts at sync.batch.size anywhere) and
//     the slave validates them before writing; the action log's records
//     carry a CRC (storage/actionlog), so the files are not QMQ's.
//   - A parked request is woken by the append instead of a 10 ms re-check.
//   - sync.batch.size defaults to 1 MiB instead of 100000 bytes (see
//     DefaultBatchSize): QMQ's cap made every round trip full under load.
//   - The answer's head and its log bytes leave in one TCP segment where
//     they fit (MSG_MORE before sendfile), so the slave wakes once per answer.
//   - The handshake (SYNC_CHECKPOINT_REQUEST version 2) checks segment
//     sizes and offsets; QMQ checks nothing and a mismatch corrupts the copy.
//   - Slaves are ours only: a Java master answers version 1 and is refused.
//     A Java slave can fetch our V1 checkpoint, but our action-log format
//     differs from QMQ's, so Java slaves are not supported either.
//   - One slave per master (QMQ's group is master, slave, backup), and one
//     session: only the connection that authenticated last counts (see
//     Authentication); QMQ counts any request.
//   - The master's lag is in bytes and in time (the age of the oldest
//     message the slave lacks); QMQ exposes bytes and "last caught up".
//
// # Failover
//
// SlaveStatus.LastContact and CaughtUp (the copy reached the master's end as
// of a handshake in this run) tell the broker when its master is gone and
// whether its copy may be promoted; promotion itself, the lease and the cut
// of a former master's tail are the broker's (services/broker, failover.go).
//
// # Goroutines
//
// Master.Run owns the remoting server (one goroutine per connection and
// per request in flight); Close or the end of Run's context stops them and
// fails pending WaitSlaveWrote calls. Slave.Run owns three goroutines and
// the connection; it returns once they stop after its context ends.
package replication
