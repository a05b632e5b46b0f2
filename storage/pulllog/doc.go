// Package pulllog keeps every consumer's pull log and progress: the Table,
// built by applying storage/actionlog actions in log order.
//
// A pull log maps a consumer's own pull sequences (the contiguous numbers a
// consumer gives the messages it receives) to consumer-log sequences (the
// subject's message numbers, taken from the group's shared cursor). Progress
// is, per consumer, the last pulled and last acknowledged pull sequence and,
// per group, the largest consumer-log sequence pulled, from which a
// restarted broker resumes the group's shared cursor.
//
// # Layout
//
// QMQ first kept one set of files per (consumer, group, subject), which
// does not scale to thousands of consumers (file handles, mmaps, tiny
// writes), then moved to a merged in-memory table dumped to shared files.
// We go one step further: no pull-log files at all. Each consumer's pull log
// is a slice of runs {FirstPullSeq, FirstMsgSeq, Count}; consecutive pulls
// that continue both sequences collapse into one run (the common case when a
// consumer is the only one pulling or no filter drops messages), and the
// acknowledged prefix is trimmed on every ack. Memory is therefore
// proportional to unacknowledged runs, at most the unacknowledged messages:
// about 200 bytes per steady consumer including its id and map entries. The
// table is persisted inside the action checkpoint (Marshal/Unmarshal); the
// action log after the checkpoint's offset is its write-ahead log, replayed
// on start. The checkpoint's offset must be the one after the last action
// applied before Marshal: take both in the goroutine that applies.
//
// # Rules (QMQ's, plus what it leaves undefined)
//
//   - PULL appends pull sequences FirstPullSeq..LastPullSeq holding
//     FirstMsgSeq..LastMsgSeq (equal lengths; a pull whose filter dropped
//     messages is several PULL actions, one per contiguous run). Pull
//     sequences the consumer already has keep their first mapping (a
//     replayed or duplicated action); a pull may leave a gap of pull
//     sequences, which then hold no message. Every PULL raises the group's
//     max pulled sequence. A group's kind (broadcast or not) is fixed by its
//     first PULL or RESET.
//   - RANGE_ACK acknowledges FirstPullSeq..LastPullSeq, clipped to the
//     pulled, unacknowledged range (AckSeq, PullSeq]: repeated acks are
//     no-ops, and an ack can never cover sequences not pulled yet. An ack that
//     starts beyond AckSeq+1 acknowledges the gap as well (QMQ's progress
//     does the same), but the gap's entries move to the consumer's Skipped
//     list so the broker can re-append them as retry messages (QMQ does that
//     before writing the ack; here it can also happen on replay).
//     Acks of unknown consumers are ignored.
//   - FOREVER_OFFLINE removes the consumer with its pull log. The group and
//     its max pulled sequence remain.
//   - RESET (ours) sets where a group stands: the group is created if new
//     (of the action's kind), and its max pulled sequence is set, not
//     raised, to LastMsgSeq (-1: nothing pulled yet), so the group's next
//     message is LastMsgSeq+1. For a broadcast group it sets the named
//     consumer's pull and ack sequences instead (creating the consumer).
//     A RESET of the other kind than its group, or below -1, is ignored.
//     Pull logs and acks are untouched: a consumer's unacked entries stay
//     redeliverable.
//   - Broadcast consumers pull with pull sequence == message sequence and
//     are never redelivered, so they keep no runs: Lookup is the identity
//     on (AckSeq, PullSeq], Unacked and Skipped are empty.
//   - Malformed actions (empty or negative ranges, unequal lengths, unknown
//     types) are ignored, so one bad record cannot stop replay.
package pulllog
