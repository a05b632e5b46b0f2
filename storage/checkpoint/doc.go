// Package checkpoint writes and loads the broker's checkpoints: small files
// under <store.root>/checkpoint that record how far the message log and the
// action log have been replayed, so recovery only replays what follows.
//
// # Files
//
// Each save writes <kind>.tmp, fsyncs it, renames it to <kind>.<n> (n is
// one more than the largest existing n, 20 decimal digits, like QMQ's names)
// and fsyncs the directory, so a crash leaves either the old set of files or
// the old set plus the complete new file, never a half-written <kind>.<n>.
// Then the oldest files beyond the retain count are removed. The kinds are
// "message-checkpoint" and "action-checkpoint".
//
// Loading picks the newest file that parses and whose checksum matches,
// falling back to older ones, so a damaged newest file costs a longer
// replay instead of a failed start.
//
// # Formats
//
// Both formats are text and end with a checksum line
//
//	#crc32:<8 lower-case hex digits>\n
//
// holding the CRC-32 (IEEE) of every byte before that line. The line is our
// addition: QMQ's files do not have it and are accepted without it.
//
// Message checkpoint (QMQ's version 2, unchanged):
//
//	2\n
//	<message log offset>\n
//	<subject>/<max sequence>\n      one line per subject, sorted by subject
//
// A subject may itself contain '/', so a line is split on its last '/'.
// Subjects containing a newline cannot be stored and make the save fail.
//
// Action checkpoint (ours; QMQ's version 3 is a text dump of its own
// progress tables, which do not exist here):
//
//	3\n
//	<action log offset>\n
//	<standard base64 of the storage/pulllog table>\n
//
// The payload line is absent when Data is empty, so QMQ's own action
// checkpoint with no consumers ("3\n<offset>\n") loads as an empty table;
// any other QMQ action checkpoint has more lines and is rejected.
package checkpoint
