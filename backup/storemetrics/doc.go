// Package storemetrics wraps a backup.Store with Prometheus series: how
// long each operation takes and how it ended (ok, not found, bad query,
// unavailable, error), and how many entries the writes carried. The backup
// process wraps its store once and registers the series on its registry.
package storemetrics
