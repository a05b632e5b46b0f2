package actionlog

import (
	"errors"
	"fmt"
	"math"
)

// Type is the kind of an action record (QMQ's ActionType codes).
type Type uint8

const (
	// Pull records that a consumer was handed the pull sequences
	// FirstPullSeq..LastPullSeq, holding consumer-log sequences
	// FirstMsgSeq..LastMsgSeq (the two ranges have the same length).
	Pull Type = 0
	// RangeAck records that a consumer acknowledged FirstPullSeq..LastPullSeq.
	RangeAck Type = 1
	// ForeverOffline records that a consumer vanished for good; its pull log
	// and progress are dropped.
	ForeverOffline Type = 2
	// Reset (ours; QMQ has no such record) sets where a consumer group's
	// shared cursor stands, or a broadcast consumer's own: the next message
	// it pulls is LastMsgSeq+1 (LastMsgSeq -1: the subject's first message).
	// The broker writes it when it first sees a group, which then starts at
	// the newest message (QMQ keeps that start only in memory, so a restart
	// or a failover before the group's first pulled message moved the start
	// forward and lost what was sent in between), and for CONSUME_MANAGE.
	Reset Type = 3
)

func (t Type) String() string {
	switch t {
	case Pull:
		return "PULL"
	case RangeAck:
		return "RANGE_ACK"
	case ForeverOffline:
		return "FOREVER_OFFLINE"
	case Reset:
		return "RESET"
	default:
		return fmt.Sprintf("Type(%d)", uint8(t))
	}
}

// Action is one record of the action log. Fields a type does not carry are
// zero after decoding (Broadcast is PULL and RESET only, FirstMsgSeq PULL
// only, LastMsgSeq PULL and RESET only; the pull sequences are PULL and
// RANGE_ACK only).
type Action struct {
	Type       Type
	Subject    string
	Group      string
	ConsumerID string
	// Timestamp is milliseconds since the Unix epoch, as in QMQ.
	Timestamp    int64
	Broadcast    bool
	FirstPullSeq int64
	LastPullSeq  int64
	FirstMsgSeq  int64
	LastMsgSeq   int64
}

// MaxStringLen is the longest subject, group or consumer id a record can
// hold: strings are written with a signed 16-bit length, as QMQ does.
const MaxStringLen = math.MaxInt16

// ErrInvalidAction is wrapped by the errors Append and AppendEncoded return
// for an action that cannot be written.
var ErrInvalidAction = errors.New("invalid action")

// validate checks only what the encoding needs; the meaning of the sequences
// is storage/pulllog's business (it ignores actions that make no sense).
func (a *Action) validate() error {
	if a.Type > Reset {
		return fmt.Errorf("%w: unknown type %d", ErrInvalidAction, uint8(a.Type))
	}
	for _, s := range [...]struct{ name, v string }{{"subject", a.Subject}, {"group", a.Group}, {"consumer id", a.ConsumerID}} {
		if len(s.v) > MaxStringLen {
			return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalidAction, s.name, len(s.v), MaxStringLen)
		}
	}
	return nil
}

// normalized returns a with the fields its type does not carry zeroed: what
// a decode of its encoding yields.
func (a Action) normalized() Action {
	switch a.Type {
	case RangeAck:
		a.Broadcast, a.FirstMsgSeq, a.LastMsgSeq = false, 0, 0
	case ForeverOffline:
		a.Broadcast, a.FirstMsgSeq, a.LastMsgSeq, a.FirstPullSeq, a.LastPullSeq = false, 0, 0, 0, 0
	case Reset:
		a.FirstMsgSeq, a.FirstPullSeq, a.LastPullSeq = 0, 0, 0
	}
	return a
}
