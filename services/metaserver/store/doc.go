// Package store is the metaserver's persistence: cluster metadata (brokers,
// broker groups, subjects, routes, subscriptions, read-only marks, client
// databases) in the nine tables of QMQ's metaserver schema.
//
// # Backends
//
// One SQL implementation serves two databases; a small dialect value holds what
// differs (upsert and ignore-duplicate syntax, row locking, time encoding,
// duplicate-key detection):
//
//   - MySQL/MariaDB (OpenMySQL), for production and for several metaservers
//     sharing one database. The schema is schema/init.sql, applied by the
//     operator; OpenMySQL only checks that the tables exist and names the
//     missing ones. Table and column names, types and unique keys are QMQ's, so
//     a database used by QMQ's Java metaserver works unchanged, in both
//     directions. DSNFromJDBC translates QMQ's jdbc:mysql:// URLs.
//   - SQLite (OpenSQLite, pure Go modernc.org/sqlite), the embedded default
//     for a single metaserver. The schema is schema/init_sqlite.sql: same tables,
//     columns and unique keys, applied automatically and idempotently.
//
// Both backends run the same behaviour tests. To keep them alike, values are
// checked in Go against MySQL's column limits (VARCHAR lengths in characters,
// TINYINT/INT ranges, TIMESTAMP's 1970..2038 range) before anything is written,
// so SQLite rejects what MySQL in strict mode would, and MySQL in non-strict
// mode never truncates silently. Text comparisons are case-insensitive on both
// (MySQL's utf8mb4_general_ci; COLLATE NOCASE in SQLite, which folds ASCII
// only), so "Order" and "order" are the same subject everywhere.
//
// Errors are wrapped with what was being done ("insert broker g1/0: ...");
// unique-key violations wrap ErrDuplicate (and keep the driver's message,
// which names the key), missing rows that must exist wrap ErrNotFound.
//
// # Times
//
// The store writes create_time and update_time itself, from Go, rather than
// relying on DEFAULT/ON UPDATE CURRENT_TIMESTAMP, and reads them back as
// time.Time in UTC. Times are truncated to whole seconds, the precision of
// MySQL's TIMESTAMP, before being written or compared. A zero time in a value
// to be written (BrokerGroup.UpdateTime, SubjectInfo.UpdateTime,
// ClientMeta.UpdateTime, the now arguments) means time.Now().
//
//   - MySQL: the connection has parseTime=true and loc=UTC and the session
//     time_zone is '+00:00' (OpenMySQL forces all three), so TIMESTAMP values
//     are UTC on the wire; rows written by QMQ with NOW() in another session
//     time zone are still read correctly, since TIMESTAMP is stored as UTC.
//   - SQLite: TEXT 'YYYY-MM-DD HH:MM:SS' in UTC, the format of SQLite's own
//     CURRENT_TIMESTAMP; it sorts and compares chronologically, which
//     MarkBrokerGroupNRWIfStale relies on.
//
// # IP addresses
//
// broker.ip is INT UNSIGNED holding the IPv4 address as an integer, the value
// of MySQL's INET_ATON (a.b.c.d = a<<24|b<<16|c<<8|d, so 255.255.255.255 is
// 4294967295). The conversion is done in Go, not with INET_ATON/INET_NTOA, so
// that SQLite stores the same numbers; only dotted IPv4 addresses are accepted.
//
// # Affected rows
//
// Methods returning rows affected count rows matched, also when the values did
// not change: SQLite always does, and OpenMySQL sets clientFoundRows, as QMQ's
// JDBC driver behaves.
package store
