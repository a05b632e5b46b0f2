package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/tracing"
)

func errorFrame(code int16, format string, args ...any) protocol.Frame {
	return protocol.Frame{Header: protocol.Header{Code: code}, Body: protocol.AppendErrorBody(nil, fmt.Sprintf(format, args...))}
}

func (s *instance) handleSend(ctx context.Context, req *remoting.Request) protocol.Frame {
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
	if !s.online.Load() || s.fenced() {
		remark := "BROKER READ ONLY"
		if s.online.Load() {
			remark = "BROKER READ ONLY: this master cannot renew its group's master lease (failover fencing); send to another group"
		}
		for i := range msgs {
			fail(&msgs[i], protocol.SendBrokerReadOnly, remark)
		}
		return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
	}
	// Subjects first: illegal ones, then those not routed to this group.
	// An illegal name is BLOCK, QMQ's final refusal: producers do not try
	// it again, on this group or another. Retry and dead-letter subjects
	// built from legal names are legal: consumers send failed messages
	// there.
	legal := make([]int, 0, len(msgs))
	var subjects []string
	for i := range msgs {
		m := &msgs[i]
		if err := names.WireSubject(m.Message.Subject); err != nil {
			fail(m, protocol.SendBlock, "message rejected: "+err.Error())
			continue
		}
		legal = append(legal, i)
		if real := protocol.RealSubject(m.Message.Subject); !slices.Contains(subjects, real) {
			subjects = append(subjects, real)
		}
	}
	refused := s.routes.refusals(ctx, s.Group(), subjects)
	batch := make([]messagelog.Message, 0, len(legal))
	kept := make([]int, 0, len(legal))
	now := time.Now().UnixMilli()
	for _, i := range legal {
		m := &msgs[i]
		if why, ok := refused[protocol.RealSubject(m.Message.Subject)]; ok {
			fail(m, protocol.SendSubjectNotAssigned, "message rejected: "+why)
			continue
		}
		if m.Size() > s.settings.MaxMessageSize {
			fail(m, protocol.SendBlock, "message of "+strconv.Itoa(m.Size())+" bytes is over the broker's max.message.size of "+strconv.Itoa(s.settings.MaxMessageSize))
			continue
		}
		batch = append(batch, messagelog.Message{Subject: m.Message.Subject, Payload: m.Payload, Timestamp: now})
		kept = append(kept, i)
	}
	if len(batch) > 0 {
		if s.tracer.On() {
			spans := s.tracer.StartRaw(ctx, tracing.SpanStore, msgs, kept, tracing.Group(s.Group()))
			defer func() { spans.End(fails, slaveWroteEvent(s.settings.WaitSlaveWrote)) }()
		}
		appended, err := s.store.Append(ctx, batch)
		var full *storage.DiskFullError
		switch {
		case errors.As(err, &full):
			s.refuseDiskFull(msgs, kept, full, req.RemoteAddr, fail)
		case err != nil:
			s.appendErrLog.Error(s.log, "store append failed", "messages", len(batch), "remote", req.RemoteAddr, "error", err)
			for _, i := range kept {
				fail(&msgs[i], protocol.SendStoreError, "store error on broker group "+s.Group()+": the message was not stored; the broker's log has the cause (\"store append failed\"); send it again, another group takes it")
			}
		default:
			s.m.received.Add(float64(len(batch)))
			s.waitForSlave(ctx, msgs, kept, appended, fail)
		}
	}
	return protocol.Frame{Body: protocol.AppendSendResults(nil, fails)}
}

// slaveWroteEvent is the event of a stored message's span that the slave
// confirmed (none when the group does not wait for its slave).
func slaveWroteEvent(waitSlaveWrote bool) string {
	if waitSlaveWrote {
		return tracing.EventSlaveWrote
	}
	return tracing.EventStored
}

// refuseDiskFull answers messages the store refused for lack of disk space
// BROKER_READ_ONLY, with the reason as the remark: QMQ's producers (and
// ours) then send them to another group, and the remark tells whoever reads
// the failure what to do. The broker also heartbeats read-only meanwhile
// (brokerState), so the metaserver stops routing producers here. Logged at
// most once per lograte.DefaultInterval: producers retry, and every retry lands here.
func (s *instance) refuseDiskFull(msgs []protocol.RawMessage, idx []int, full *storage.DiskFullError, remote net.Addr, fail func(*protocol.RawMessage, int32, string)) {
	addr := ""
	if a := s.advertised.Load(); a != nil {
		addr = *a
	}
	remark := fmt.Sprintf("%s%s (%s): %s; free space or add a group", protocol.RemarkDiskFull, s.Group(), addr, full.Detail())
	for _, i := range idx {
		fail(&msgs[i], protocol.SendBrokerReadOnly, remark)
	}
	s.diskFullLog.Warn(s.log, "refusing messages: disk full", "messages", len(idx), "remote", remote, "reason", full.Error())
}

// waitForSlave holds the answer until the slave has written the batch when
// the group runs with wait.slave.wrote (QMQ: reliable messages only, i.e.
// without the unreliable flag). Messages the slave does not confirm in time
// are answered BROKER_BUSY: producers send them again, to another group if
// they can.
func (s *instance) waitForSlave(ctx context.Context, msgs []protocol.RawMessage, kept []int, appended []messagelog.Appended, fail func(*protocol.RawMessage, int32, string)) {
	r := s.replica.Load()
	if !s.settings.WaitSlaveWrote || r == nil || r.master == nil {
		return
	}
	var reliable []int
	for _, i := range kept {
		if msgs[i].Message.Flag&protocol.MessageFlagUnreliable == 0 {
			reliable = append(reliable, i)
		}
	}
	if len(reliable) == 0 {
		return
	}
	last := appended[len(appended)-1]
	if err := r.waitSlaveWrote(ctx, last.Offset+int64(last.Size), len(reliable)); err != nil {
		s.m.slaveUnconfirmed.Add(float64(len(reliable)))
		for _, i := range reliable {
			fail(&msgs[i], protocol.SendBrokerBusy, err.Error())
		}
	}
}
