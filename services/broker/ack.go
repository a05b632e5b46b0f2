package broker

import (
	"context"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage/actionlog"
)

func (s *instance) handleAck(ctx context.Context, req *remoting.Request) protocol.Frame {
	if f, refused := s.refuseUnlessMaster(); refused {
		return f
	}
	a, err := protocol.DecodeAckRequest(req.Frame.Body, req.Frame.Header.Version)
	if err != nil {
		return errorFrame(protocol.CodeParamError, "%v", err)
	}
	if a.ConsumerGroup == "" {
		a.ConsumerGroup, a.Broadcast = a.ConsumerID, true
	}
	if a.Subject == "" || a.ConsumerID == "" {
		// Java answers BROKER_ERROR here.
		return errorFrame(protocol.CodeBrokerError, "ACK_REQUEST needs a subject, a consumer group and a consumer id (got subject %q, group %q, consumer %q)", a.Subject, a.ConsumerGroup, a.ConsumerID)
	}
	if err := consumerNames(a.Subject, a.ConsumerGroup, a.Broadcast); err != nil {
		// Nothing of an illegal name reaches the action log.
		return errorFrame(protocol.CodeParamError, "ACK_REQUEST refused: %v", err)
	}
	if !a.Broadcast {
		s.subs.seen(a.Subject, a.ConsumerGroup, a.ConsumerID)
	}
	if a.IsHeartbeat() {
		return protocol.Frame{}
	}
	if a.PullOffsetLast < a.PullOffsetBegin {
		return errorFrame(protocol.CodeParamError, "ACK_REQUEST range %d..%d is empty", a.PullOffsetBegin, a.PullOffsetLast)
	}
	err = s.store.ApplyActions([]actionlog.Action{{
		Type: actionlog.RangeAck, Subject: a.Subject, Group: a.ConsumerGroup, ConsumerID: a.ConsumerID,
		Timestamp: time.Now().UnixMilli(), FirstPullSeq: a.PullOffsetBegin, LastPullSeq: a.PullOffsetLast,
	}})
	if err != nil {
		s.log.Error("recording an ack failed", "subject", a.Subject, "group", a.ConsumerGroup, "consumer", a.ConsumerID, "error", err)
		return errorFrame(protocol.CodeBrokerError, "store error: %v", err)
	}
	s.m.acked.Add(float64(a.PullOffsetLast - a.PullOffsetBegin + 1))
	return protocol.Frame{}
}

// handleConsumeManage moves a group's shared cursor: to the earliest or
// latest message (QMQ), or (ours) to the first message stored at or after a
// time. The answer carries where the cursor now is (ours; Java brokers
// answer an empty body). Ours too: the move is recorded in the action log
// (RESET), so it survives a restart and reaches the slave.
func (s *instance) handleConsumeManage(ctx context.Context, req *remoting.Request) protocol.Frame {
	if f, refused := s.refuseUnlessMaster(); refused {
		return f
	}
	m, err := protocol.DecodeConsumeManageRequest(req.Frame.Body)
	if err != nil {
		return errorFrame(protocol.CodeParamError, "%v", err)
	}
	if m.Subject == "" || m.ConsumerGroup == "" {
		return errorFrame(protocol.CodeParamError, "CONSUME_MANAGE needs a subject and a consumer group")
	}
	if err := consumerNames(m.Subject, m.ConsumerGroup, false); err != nil {
		return errorFrame(protocol.CodeParamError, "CONSUME_MANAGE refused: %v", err)
	}
	var next int64
	var at int64 = -1 // the timestamp asked for
	switch m.Code {
	case protocol.ConsumeFromEarliest:
		next = s.store.MinSequence(m.Subject)
	case protocol.ConsumeFromLatest:
		next = s.store.MaxSequence(m.Subject) + 1
	case protocol.ConsumeFromTimestamp:
		if at, err = protocol.DecodeConsumeManageTimestamp(req.Frame.Body); err != nil {
			return errorFrame(protocol.CodeParamError, "%v", err)
		}
		if next, err = s.store.SeekTimestamp(m.Subject, at); err != nil {
			s.log.Error("finding a message by time failed", "subject", m.Subject, "timestamp", at, "error", err)
			return errorFrame(protocol.CodeBrokerError, "cannot find the first message of %q stored at or after %s: %v", m.Subject, time.UnixMilli(at).UTC().Format(time.RFC3339Nano), err)
		}
	default:
		return errorFrame(protocol.CodeParamError, "CONSUME_MANAGE code %d: want %d (latest), %d (earliest) or %d (timestamp, followed by an i64 of milliseconds since the epoch)",
			m.Code, protocol.ConsumeFromLatest, protocol.ConsumeFromEarliest, protocol.ConsumeFromTimestamp)
	}
	c := s.cursorFor(cursorKey{subject: m.Subject, group: m.ConsumerGroup})
	if !c.lock(ctx) {
		return errorFrame(protocol.CodeBrokerError, "cancelled")
	}
	// Recorded like a new group's start, so that the reset outlives a
	// restart or a failover (QMQ keeps it in memory only).
	end, err := s.store.ApplyActionsDurable([]actionlog.Action{{Type: actionlog.Reset, Subject: m.Subject, Group: m.ConsumerGroup,
		Timestamp: time.Now().UnixMilli(), LastMsgSeq: next - 1}})
	if err != nil {
		c.unlock()
		s.log.Error("recording a consumer group cursor reset failed", "subject", m.Subject, "group", m.ConsumerGroup, "next_sequence", next, "error", err)
		return errorFrame(protocol.CodeBrokerError, "cannot record the reset of group %q of %q to sequence %d: %v", m.ConsumerGroup, m.Subject, next, err)
	}
	c.next, c.init = next, true
	c.unlock()
	s.waitSlaveHasStart(ctx, m.Subject, m.ConsumerGroup, end)
	res := protocol.ConsumeManageResult{NextSequence: next, MessageTimestamp: -1}
	if ts, ok, err := s.store.Timestamp(m.Subject, next); err == nil && ok {
		res.MessageTimestamp = ts
	}
	args := []any{"subject", m.Subject, "group", m.ConsumerGroup, "code", m.Code, "next_sequence", next, "remote", req.RemoteAddr}
	if m.Code == protocol.ConsumeFromTimestamp {
		args = append(args, "timestamp", time.UnixMilli(at).UTC().Format(time.RFC3339Nano))
	}
	s.log.Info("consumer group cursor reset", args...)
	return protocol.Frame{Body: protocol.AppendConsumeManageResult(nil, &res)}
}
