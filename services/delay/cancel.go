package delay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
)

// cancels is the state of CANCEL_DELAY's handler.
type cancels struct {
	refusedLog lograte.Limiter    // refusals: one line per interval
	refused    prometheus.Counter // refusals, all of them
	done       prometheus.Counter // messages withdrawn
}

// serveCancel registers the CANCEL_DELAY handler and its series.
func (s *Server) serveCancel() {
	s.cancels.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_cancel_refused_total",
		Help: "CANCEL_DELAY requests refused for a bad or missing signature (delay.admin.secret)."})
	s.cancels.done = prometheus.NewCounter(prometheus.CounterOpts{Name: "qmq_delay_cancelled_total",
		Help: "Scheduled messages withdrawn by CANCEL_DELAY."})
	s.m.reg.MustRegister(s.cancels.refused, s.cancels.done)
	s.tcp.Handle(protocol.CodeCancelDelay, remoting.HandlerFunc(s.handleCancel))
}

// handleCancel serves CANCEL_DELAY (ours): the metaserver's CancelDelay
// action asks every delay master to withdraw subject/messageId. The
// request must be signed with delay.admin.secret (package delayadmin):
// broker.port is open to clients that never authenticate. Only a master
// cancels: the cancel is a dispatch-log record, written where the log is
// written, and a slave copies it from there.
func (s *Server) handleCancel(_ context.Context, req *remoting.Request) protocol.Frame {
	reject := func(msg string) protocol.Frame {
		return protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerReject, protocol.AppendErrorBody(nil, msg))
	}
	r, err := delayadmin.DecodeRequest(req.Frame.Body)
	if err == nil {
		err = delayadmin.Verify(s.settings.AdminSecret, r, time.Now())
	}
	if err != nil {
		// One line per refusal, rate-limited: this is what a probe of the
		// open port looks like. The secret and the MAC are never logged.
		if ok, suppressed := s.cancels.refusedLog.Allow(time.Now()); ok {
			s.log.Warn("CANCEL_DELAY refused", "remote", req.RemoteAddr.String(), "reason", err.Error(), lograte.SuppressedKey, suppressed)
		}
		s.cancels.refused.Inc()
		return reject("cancel refused: " + err.Error())
	}
	if g := s.Group(); r.Group != g {
		return reject("cancel refused: this delay server is of group " + g + ", not " + r.Group + "; the metaserver's broker table is out of date")
	}
	if s.role.Load() != int32(protocol.RoleDelayMaster) {
		return reject("cancel refused: this delay server of group " + r.Group + " is not the master; ask the master (a slave copies the master's cancel records)")
	}
	ok, err := s.store.Cancel(r.Subject, r.MessageID)
	if err != nil {
		s.log.Error("CANCEL_DELAY failed", "subject", r.Subject, "messageId", r.MessageID, "error", err)
		return protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerError, protocol.AppendErrorBody(nil, "cancel failed: "+err.Error()))
	}
	answer := delayadmin.NotFound
	if ok {
		answer = delayadmin.Cancelled
		s.cancels.done.Inc()
		s.log.Info("delay message cancelled", "subject", r.Subject, "messageId", r.MessageID, "remote", req.RemoteAddr.String())
	}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendUint8(nil, answer))
}
