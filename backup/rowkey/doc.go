// Package rowkey builds and parses the row keys and cell values of QMQ's
// backup tables (qmq_backup, qmq_backup_record, qmq_backup_dead,
// qmq_backup_dead_content) byte for byte as QMQ's BackupKeyGenerator,
// KeyTools and the *BatchBackup writers do, so rows written by either side
// read on the other. Both stores use it: HBase keeps the rows as they are,
// Pebble prefixes each with a table byte.
//
// Keys are ASCII: 6-digit dictionary ids (backup/dic), a 12-digit reversed
// create time (999999999999 − yyMMddHHmmss, so newer rows sort first), the
// 32-hex-digit MD5 of the message id, and 19-digit sequences. Values are
// big-endian binary as QMQ's HBase Bytes helpers write them.
//
// A few layouts are ours, not QMQ's, and are marked so: the detail value
// (a message's content and index by broker group and sequence) and the
// id-index key Pebble uses to find a message id without a scan.
package rowkey
