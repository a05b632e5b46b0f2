// Package names holds the one rule for the names clients choose: subjects
// and consumer groups. Every entry point checks names with it — the Go
// client before it sends, `qmq tools` before it posts, the metaserver's
// management API and CLIENT_REGISTER, and the broker's SEND_MESSAGE,
// PULL_MESSAGE, ACK_REQUEST and CONSUME_MANAGE — so a name refused in one
// place is refused in all of them, with the same message.
//
// # The rule
//
// A subject or consumer group is 1 to 100 characters (MaxLen) from the
// alphabet A-Z a-z 0-9 '.' '_' '-'. That is what QMQ's own subjects and
// the QMQ documentation's examples use ("order.changed"); 100 is QMQ's
// limit for subjects and groups and the size of the metaserver's MySQL
// columns (subject_info.name, subject_route.subject_info,
// client_meta_info.consumer_group). QMQ itself only refuses empty, over-long
// and unprintable subjects (the broker's Receiver.RejectIllegalSubject); we
// are stricter so that no name can carry whitespace, control characters,
// quotes, semicolons, slashes, '*' (the "all subjects" wildcard of the
// management API) or '%' (the separator of retry subjects), and so that a
// name is the same string in a file name, a log line, a metric label and
// a SQL row.
//
// # Retry and dead-letter subjects
//
// A consumer group's failed messages go to %RETRY%<subject>%<group>, and
// after the last retry to %DEAD_RETRY%<subject>%<group>. Consumers send
// messages to those subjects and pull them, so WireSubject, the check for
// subjects on the wire, accepts them when they are built from legal parts
// (decorations may nest: a dead-letter reader's retry subject is
// %RETRY%%DEAD_RETRY%order%g%reader). Subject, the check for a subject a
// user names — AddNewSubject, a producer's message — refuses the reserved
// prefixes: nobody declares or produces to a retry subject by hand. A
// decorated subject is at most MaxWireSubjectLen bytes, the longest name a
// broker's consumer-log directory can have.
package names
