// Package storeconf reads the backup store's keys of backup.properties and
// opens the store they name, for the backup process's loader
// (services/backup): store.type picks Pebble (the default) or HBase, and
// each store's keys fill its Settings. Keys are QMQ's where QMQ has one
// (store.type, hbase.*.table) and ours otherwise (backup.*).
package storeconf
