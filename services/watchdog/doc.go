// Package watchdog is `qmq watchdog`, QMQ's watchdog: it resends the
// messages of transactional sends (package client/tx, QMQ's
// qmq_msg_queue table) that the application committed but never sent,
// because it died between commit and send, or its sends failed.
//
// Several watchdogs run per namespace (QMQ's name for a room); one leads,
// elected on the metaserver's leader_election table (election.go: a 5 s
// lease renewed every second; a killed leader is replaced within 6 s,
// one stopped cleanly within 1 s), or, when consul.address is set, on a
// Consul lock (election_consul.go: a session tied to a 3 s TTL check
// passed every second, lock-delay 2 s; a killed leader is replaced in 4
// to 6 s, one cut off from its agent stops sending within 1.8 s of its
// last renewal, before anyone can take the lock however its session
// ends). Either
// way a leader stops sending before its lead could be taken, so two
// never send at once. The leader reads the
// client databases registered with `qmq tools AddDb` (datasource_config
// rows with status 0 and room = namespace, every refreshInterval) and
// every checkInterval scans each, in parallel and time-boxed by
// sendMessageTaskExecuteTimeout, for rows with status 0 untouched for
// longer than checkInterval: it decodes each (tx.Decode, the JSON QMQ's
// Java client writes), sends it with a client.Producer, and
//
//   - DELETEs the row once a broker stored the message;
//   - raises error (and update_time) when the send failed: the row is
//     tried again next round;
//   - marks status -100 when a broker refused the message (BLOCK), as
//     QMQ's client does;
//   - marks status -2 (QMQ's VALID_ERROR) when the row cannot be sent as
//     it is: content that does not parse, no subject, a subject with an
//     unresolved "${", or watchdog.max.errors failed sends (QMQ: 1000).
//     Marked rows are kept, logged once and counted in /metrics; they are
//     never read again until a human sets status back to 0.
//
// A client database that cannot be reached or refuses the login is
// skipped with one log line per round naming its url (never its
// password); the others are served. Delivery is at least once: a leader
// that loses its lead between a broker's acknowledgement and the DELETE
// leaves the row, and it is sent again; consumers deduplicate by message
// id (client/idempotent).
//
// Configuration is QMQ's watchdog.properties (appCode, namespace,
// checkInterval, refreshInterval, sendMessageTaskExecuteTimeout,
// meta.server.endpoint) and datasource.properties naming the metaserver's
// database as the metaserver reads it (jdbc.url; none = the embedded
// SQLite file under store.root). See LoadSettings and docs/configuration.md.
// /health and /metrics are served on watchdog.http.port.
package watchdog
