package backup

import "time"

// Kind tells a normal message from a retry or dead-letter copy; its
// numbers are QMQ's recordCode (0 normal, 1 retry, 2 dead).
type Kind uint8

const (
	KindNormal Kind = 0
	KindRetry  Kind = 1
	KindDead   Kind = 2
)

// Message is one message's index entry, as the backup keeps it for every
// message a broker group stored (QMQ's qmq_backup row) and, with
// ConsumerGroup and Content, for a dead letter (qmq_backup_dead and
// qmq_backup_dead_content).
type Message struct {
	// Subject is the subject the producer sent to. For a retry or dead
	// copy it is the original subject (not %RETRY%s%g / %DEAD_RETRY%s%g).
	Subject   string
	MessageID string
	// BrokerGroup and Sequence locate the message: Sequence is its
	// consumer-log sequence in BrokerGroup's log of the subject it was
	// stored under (StoredSubject).
	BrokerGroup string
	Sequence    int64
	CreateTime  time.Time
	Kind        Kind
	// ConsumerGroup is the group whose retry or dead-letter subject held the
	// copy ("" for KindNormal).
	ConsumerGroup string
	// LogOffset is where BrokerGroup's message log holds the record, when
	// Located (the follower knows it; a query answers it when the store
	// kept it): the detail of a message kept without its content is read
	// there from the group's slave.
	LogOffset int64
	Located   bool
	// Content is the message as stored by the broker (QMQ's payload
	// encoding: flag, times, subject, id, tags, attributes). Always kept for
	// dead letters; for other messages only with backup.message.content.
	Content []byte
}

// MessageRef names one stored message by where its broker group stored it.
// A normal message, its retry copies and its dead letters are numbered in
// different logs (the subject's, %RETRY%<subject>%<group>'s and
// %DEAD_RETRY%<subject>%<group>'s), so the same broker group and sequence
// commonly name one of each — and one copy per consumer group: Kind and
// ConsumerGroup say which.
type MessageRef struct {
	Subject     string // the original subject
	BrokerGroup string
	Sequence    int64
	// Kind is which copy: KindRetry names ConsumerGroup's retry copy,
	// KindDead its dead letter, KindNormal the message itself. A
	// ConsumerGroup with Kind left KindNormal names the dead letter (the
	// spelling from before retry copies had a detail).
	Kind Kind
	// ConsumerGroup is the group whose retry or dead-letter subject holds
	// the copy; "" for the normal message.
	ConsumerGroup string
}

// Which is the kind of copy r names (see Kind).
func (r MessageRef) Which() Kind {
	switch {
	case r.Kind == KindRetry:
		return KindRetry
	case r.ConsumerGroup != "" || r.Kind == KindDead:
		return KindDead
	}
	return KindNormal
}

// Ref is where m is stored: its MessageRef.
func (m *Message) Ref() MessageRef {
	r := MessageRef{Subject: m.Subject, BrokerGroup: m.BrokerGroup, Sequence: m.Sequence, Kind: m.Kind}
	if m.Kind != KindNormal {
		r.ConsumerGroup = m.ConsumerGroup
	}
	return r
}

// Action is a consume action; its numbers are QMQ's (0 pull, 1 ack).
type Action uint8

const (
	ActionPull Action = 0
	ActionAck  Action = 1
)

// Record is one consumer's pull or ack of one message (QMQ's
// qmq_backup_record row). A broker logs pulls and acks as ranges; the
// backup expands them to one record per message and action.
type Record struct {
	// Subject and Sequence name the message as the broker stored it: for a
	// retry copy Subject is "%RETRY%<subject>%<group>" and Sequence its
	// sequence there.
	Subject       string
	BrokerGroup   string
	Sequence      int64
	ConsumerGroup string
	ConsumerID    string
	Action        Action
	Timestamp     time.Time
}

// MessageQuery selects messages (or dead letters) of one subject, newest
// first, as QMQ's backupQuery does.
type MessageQuery struct {
	Subject string // required
	// MessageID, if set, selects that message's entries only (a message has
	// one normal entry per broker group it was stored in, and one per retry).
	MessageID string
	// ConsumerGroup narrows dead letters to one consumer group ("" any).
	ConsumerGroup string
	// CreateTimeBegin and CreateTimeEnd bound the create time, inclusive;
	// zero values mean QMQ's defaults (the last 30 days; now).
	CreateTimeBegin time.Time
	CreateTimeEnd   time.Time
	// Len is the page size (1..MaxPageLen).
	Len int
	// Start continues a previous page: that page's Next, passed back as is.
	Start string
}

// MaxPageLen bounds MessageQuery.Len; a larger len is refused (4xx), not
// clamped silently.
const MaxPageLen = 1000

// MessagePage is one page of a MessageQuery's answer.
type MessagePage struct {
	Messages []Message
	// Next, when not empty, is the Start of the following page.
	Next string
}

// RecordQuery selects the consume records of one message (QMQ's
// recordQuery).
type RecordQuery struct {
	Subject     string
	MessageID   string
	BrokerGroup string
	Sequence    int64
	// Kind: KindNormal — records of the message itself; KindRetry —
	// records of its retry copies; KindDead — its dead letters.
	Kind Kind
}
