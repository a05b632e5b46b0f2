// Package backup is the backup service (`qmq backup`): it follows one
// broker group's slave over the slave's sync port and fills a backup.Store
// with what the group's logs hold — an index entry per message (retries and
// dead letters with their consumer group, dead letters with their content)
// and, from the action log, one consume record per message pulled or acked
// — and serves the query API, /health and /metrics on
// backup.server.http.port.
//
// # Following
//
// The metaserver names the group and the slave (BROKER_ACQUIRE_META, role
// 4 BACKUP, answered with the slave's sync address); the registrar asks
// again every backup.meta.refresh.ms, so after a failover (the metaserver
// swaps the group's rows) the follower switches to the new slave. On the
// slave's sync port the follower authenticates as a reader
// (syncauth.RoleBackup: it may copy, it never counts as the group's slave
// for wait.slave.wrote or the lag), shakes hands (SYNC_CHECKPOINT_REQUEST
// version 2: segment sizes and retained ranges), and copies the raw message
// log (sync type 2) and action log (type 1), as a slave does, but parses
// the records instead of storing them.
//
// # Checkpoint
//
// The follower's offsets move past bytes only once the store accepted the
// entries they hold; every sync.offset.flush.interval they are saved, with
// the pulls that wait for their acks, in store.root/backup-follower.json
// (atomically). After kill -9 the follower replays from the saved offsets:
// entries written since are written again, and Puts are idempotent, so
// nothing is lost and nothing doubles. While the store fails (down or slower
// than backup.store.timeout.ms) the same batch is retried with backoff,
// the offsets stay, and /health says degraded, with the reason.
//
// See docs/backup-follower.md for the choices and their reasons.
package backup
