// Package metaserver is QMQ's cluster registry and router, rebuilt in Go.
//
// It answers brokers (BROKER_ACQUIRE_META, BROKER_REGISTER, and our
// QUERY_SUBJECT_ROUTE, with which a broker checks that a subject is routed
// to its group before storing its messages) and clients (CLIENT_REGISTER)
// on the TCP port meta.server.port (20880), and people and
// tools on the HTTP port meta.server.discover.port (8080): /meta/address,
// /management (the actions behind `qmq tools`), /slave/meta,
// /subject/consumers, /onoffline, /health and /metrics.
//
// State lives in a store (MySQL, or embedded SQLite when no jdbc.url is
// configured) and is served from an in-memory snapshot refreshed every
// refresh.period.seconds. When the database is unreachable the last snapshot
// keeps being served, so existing subjects and consumers are unaffected; only
// work that must write (a new subject's route, a new broker) fails, with an
// error saying so.
//
// New takes typed values and reads no file: Settings (static, see
// DefaultSettings) and Options, whose Dynamic holds the keys that change
// while it runs. LoadDir reads them from QMQ's conf directory, as
// `qmq metaserver --conf` does, and re-reads the dynamic ones on SIGHUP and
// when a file changes.
package metaserver
