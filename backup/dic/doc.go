// Package dic is the backup's dictionary: it gives every name that appears
// in a row key (subjects, "%RETRY%<subject>", broker and consumer groups) a
// fixed-width 6-digit id, as QMQ's DbDicService does, so row keys stay
// short and sortable.
//
// An id is drawn at random from 0..999998 (QMQ's nextInt(0, 999999)) and
// inserted; a duplicate id or a name inserted by another backup at the same
// time is retried, five times as QMQ. Ids never change once given, so a
// Dictionary caches both directions without expiry.
//
// Two backends: SQL (NewSQL) over QMQ's qmq_dic table in the metaserver's
// MySQL/MariaDB or SQLite database, and KV (NewKV) over any ordered
// key-value store, which backup/pebblestore uses to keep its dictionary in
// its own database.
package dic
