package broker

import (
	"context"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage/actionlog"
)

func (s *Server) handleAck(ctx context.Context, req *remoting.Request) protocol.Frame {
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

func (s *Server) handleConsumeManage(ctx context.Context, req *remoting.Request) protocol.Frame {
	m, err := protocol.DecodeConsumeManageRequest(req.Frame.Body)
	if err != nil {
		return errorFrame(protocol.CodeParamError, "%v", err)
	}
	if m.Subject == "" || m.ConsumerGroup == "" {
		return errorFrame(protocol.CodeParamError, "CONSUME_MANAGE needs a subject and a consumer group")
	}
	var next int64
	switch m.Code {
	case protocol.ConsumeFromEarliest:
		next = s.store.MinSequence(m.Subject)
	case protocol.ConsumeFromLatest:
		next = s.store.MaxSequence(m.Subject) + 1
	default:
		return errorFrame(protocol.CodeParamError, "CONSUME_MANAGE code %d: want %d (latest) or %d (earliest)", m.Code, protocol.ConsumeFromLatest, protocol.ConsumeFromEarliest)
	}
	c := s.cursorFor(cursorKey{subject: m.Subject, group: m.ConsumerGroup})
	if !c.lock(ctx) {
		return errorFrame(protocol.CodeBrokerError, "cancelled")
	}
	c.next, c.init = next, true
	c.unlock()
	s.log.Info("consumer group cursor reset", "subject", m.Subject, "group", m.ConsumerGroup, "next_sequence", next, "remote", req.RemoteAddr)
	return protocol.Frame{}
}
