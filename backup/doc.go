// Package backup is the model of what the backup service keeps — message
// indexes, consume records and dead letters of broker groups — and the
// Store interface its implementations satisfy: Pebble (embedded, the
// default) in backup/pebblestore and HBase over its REST gateway in
// backup/hbasestore. The row keys and values follow QMQ's qmq-backup
// tables, so QMQ's tooling reads what we write to HBase.
//
// The process that follows a broker group's slave and fills a Store lives
// in services/backup; this package knows nothing of the network.
package backup
