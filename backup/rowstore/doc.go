// Package rowstore is a backup.Store over tables of rows, the part the
// Pebble and HBase stores share: it turns messages and records into QMQ's
// row keys and values (backup/rowkey) with ids from a dictionary
// (backup/dic), and answers queries with the key ranges and filters QMQ's
// HBase stores use. A backend only puts, gets and scans rows (Tables).
//
// Differences from QMQ, all on purpose:
//   - time bounds are exact to the millisecond and inclusive at both ends
//     (QMQ's keys hold seconds; its scan drops the begin second);
//   - a query for a subject the dictionary has never seen is ErrNotFound
//     naming the subject, and does not give it an id;
//   - retry records are found for retries of any age (QMQ: 30 days);
//   - with Options.IDIndex (Pebble) a message-id query reads an index of its
//     own instead of filtering the subject's whole time range;
//   - qmq_backup_detail (ours) keeps, by broker group and sequence (and
//     consumer group, for a retry copy or a dead letter), a message's
//     content or where its group's log holds it, for /api/message/detail;
//   - FindRetries lists one message's retry copies from QMQ's retry rows
//     (QMQ only reads them for retry records).
package rowstore
