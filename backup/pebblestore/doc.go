// Package pebblestore is the backup's embedded store (store.type=pebble,
// the default, and what `qmq dev` uses): QMQ's backup tables in one Pebble
// database, each row under a one-byte table prefix, with the dictionary in
// the same database and an id index for message-id queries.
//
// Layout (key → value; the row keys are backup/rowkey's):
//
//	m<qmq_backup row>               → index value       (normal and retry)
//	r<qmq_backup_record row>        → record value      (pull/ack, dead records)
//	d<qmq_backup_dead row>          → index value
//	c<qmq_backup_dead_content row>  → sequence + stored message
//	b<qmq_backup_detail row>        → detail value      (ours)
//	x<qmq_backup_id row>            → index value       (ours)
//	Dn<name> / Di<id>               → the dictionary
//	e<yyyymmdd><table byte><row>    → ""                (expiry log)
//
// Retention: every row written also writes an expiry-log key under the UTC
// day of its time (a message's create time, a record's timestamp). Once an
// hour (Settings.RetentionCheckInterval) a goroutine deletes the rows of
// the days older than backup.retention.days, and their log keys, in
// batches; a query may still see rows of the day being deleted.
//
// Durability: every Put is one Pebble batch. With Settings.Sync (the
// default) it is fsynced before Put returns, so a follower that saves its
// checkpoint after Put never loses an acknowledged row, even to a power
// loss. Without it the batch reaches the WAL with write(2), which survives
// kill -9 of the process (the kernel has the bytes) but not a machine crash.
package pebblestore
