package delay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage/delaystore"
	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/tracing"
)

func errorFrame(code int16, format string, args ...any) protocol.Frame {
	return protocol.Frame{Header: protocol.Header{Code: code}, Body: protocol.AppendErrorBody(nil, fmt.Sprintf(format, args...))}
}

// handleSend stores the messages of a SEND_MESSAGE under their schedule
// times and answers QMQ's per-message results, listing only failures.
// Each message is stored as the producer encoded it, CRC included: the
// dispatcher later sends exactly these bytes to a real-time broker.
func (s *Server) handleSend(ctx context.Context, req *remoting.Request) protocol.Frame {
	// Sizes are checked per message below, so one oversize message does not
	// fail its batch; the frame size bounds decoding.
	msgs, err := protocol.DecodeMessageHeaders(req.Frame.Body, req.Frame.Header.Version, 0)
	if err != nil {
		return errorFrame(protocol.CodeParamError, "%v", err)
	}
	var fails []protocol.SendResult
	fail := func(m *protocol.RawMessage, code int32, remark string) {
		fails = append(fails, protocol.SendResult{MessageID: m.Message.MessageID, Code: code, Remark: remark})
		s.m.rejected.WithLabelValues(protocol.SendCodeName(code)).Inc()
	}
	if !s.online.Load() {
		for i := range msgs {
			fail(&msgs[i], protocol.SendBrokerReadOnly, "BROKER READ ONLY: this delay server is not online yet (not registered with the metaserver as a delay master); send to another delay group")
		}
		return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
	}
	if s.fenced() {
		for i := range msgs {
			fail(&msgs[i], protocol.SendBrokerBusy, "BROKER BUSY: this delay master's lease has run out (the metaserver cannot be reached, or its slave is taking over); send to another delay group")
		}
		return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
	}
	now := time.Now()
	batch := make([]delaystore.Message, 0, len(msgs))
	kept := make([]int, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		// An illegal name is BLOCK, QMQ's final refusal: producers do not
		// try it again, here or on another group.
		if err := names.WireSubject(m.Message.Subject); err != nil {
			fail(m, protocol.SendBlock, "message rejected: "+err.Error())
			continue
		}
		if m.Message.MessageID == "" {
			fail(m, protocol.SendBlock, "message rejected: it has no message id")
			continue
		}
		if m.Size() > s.settings.MaxMessageSize {
			fail(m, protocol.SendBlock, "message of "+strconv.Itoa(m.Size())+" bytes is over the delay server's per.message.size of "+strconv.Itoa(s.settings.MaxMessageSize))
			continue
		}
		// The request's bytes as they are: Append copies them into the
		// message log before it returns, and nothing keeps batch after.
		batch = append(batch, delaystore.Message{
			ScheduleTime: scheduleTime(&m.Message, now),
			Subject:      m.Message.Subject,
			MessageID:    m.Message.MessageID,
			Payload:      m.Wire,
		})
		kept = append(kept, i)
	}
	if len(batch) == 0 {
		return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
	}
	if s.tracer.On() {
		spans := s.tracer.StartRaw(ctx, tracing.SpanDelaySchedule, msgs, kept, tracing.Group(s.Group()))
		defer func() { spans.End(fails, tracing.EventStored) }()
	}
	end, err := s.store.Append(batch)
	if err == nil {
		// wait.slave.wrote: answered once the slave has the messages.
		if werr := s.waitSlaveWrote(ctx, end); werr != nil {
			s.m.rejected.WithLabelValues(protocol.SendCodeName(protocol.SendBrokerBusy)).Add(float64(len(kept)))
			s.slaveWaitLog.Warn(s.log, "sends not confirmed by the delay slave: answered BROKER_BUSY", "messages", len(kept), "error", werr)
			for _, i := range kept {
				fails = append(fails, protocol.SendResult{MessageID: msgs[i].Message.MessageID, Code: protocol.SendBrokerBusy, Remark: werr.Error()})
			}
			return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
		}
	}
	var full *diskspace.FullError
	switch {
	case errors.As(err, &full):
		addr := ""
		if a := s.advertised.Load(); a != nil {
			addr = *a
		}
		remark := fmt.Sprintf("%s%s (%s): %s; free space or add a delay group", protocol.RemarkDiskFull, s.Group(), addr, full.Detail())
		s.diskFull.Store(&remark)
		s.diskFullAt.Store(time.Now().UnixNano())
		for _, i := range kept {
			fail(&msgs[i], protocol.SendBrokerReadOnly, remark)
		}
		s.diskFullLog.Warn(s.log, "refusing delay messages: disk full", "messages", len(kept), "remote", req.RemoteAddr, "reason", full.Error())
	case err != nil:
		s.appendErrLog.Error(s.log, "delay store append failed", "messages", len(batch), "remote", req.RemoteAddr, "error", err)
		for _, i := range kept {
			fail(&msgs[i], protocol.SendStoreError, "store error on delay group "+s.Group()+": the message was not stored; the delay server's log has the cause (\"delay store append failed\"); send it again, another delay group takes it")
		}
	default:
		if s.diskFull.Load() != nil {
			s.diskFull.Store(nil)
			s.log.Info("the delay store takes messages again (disk space freed)")
		}
		s.m.received.Add(float64(len(batch)))
	}
	return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
}
