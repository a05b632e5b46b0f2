package delay

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// dispatcher sends due messages to the subject's real-time brokers, as
// QMQ's delay master does: it takes batches from Store.Due, reads each
// message, sends the bytes the producer sent (CRC included, unchanged, as
// QMQ's delay server does: the delay flag and the schedule time stay in the
// message, so consumers can see when it was due) and marks them dispatched
// once a broker has acknowledged them. A failure is retried with backoff on
// another group and fresh routes; nothing is dropped. One batch is finished
// before the next is asked for, so the store never hands out an entry the
// dispatcher still holds.
type dispatcher struct {
	s   *Server
	log hclog.Logger

	failLog lograte.Limiter
	markLog lograte.Limiter
}

type dueMessage struct {
	entry delaystore.Entry
	msg   delaystore.Message
}

func newDispatcher(s *Server) *dispatcher {
	return &dispatcher{s: s, log: s.log.Named("dispatch")}
}

// run dispatches until ctx ends. Only a delay master runs it.
func (d *dispatcher) run(ctx context.Context) {
	set := d.s.settings.Dispatch
	bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
	d.log.Info("dispatching due messages to the real-time brokers", "batch", set.BatchSize)
	for ctx.Err() == nil {
		es, err := d.s.store.Due(ctx, set.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.failLog.Error(d.log, "the delay store cannot hand out due messages; retrying", "error", err)
			_ = bo.Wait(ctx)
			continue
		}
		bo.Reset()
		d.dispatch(ctx, es)
	}
}

// dispatch sends one batch of due entries, subject by subject, returning
// when all are acknowledged or ctx has ended.
func (d *dispatcher) dispatch(ctx context.Context, es []delaystore.Entry) {
	set := d.s.settings.Dispatch
	bySubject := map[string][]dueMessage{}
	var order []string
	oldest := int64(0)
	for _, e := range es {
		bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
		var m delaystore.Message
		for {
			var err error
			if m, err = d.s.store.Read(e); err == nil {
				break
			}
			// Never dropped: an unreadable message is retried and logged
			// until an operator looks at the store.
			d.failLog.Error(d.log, "cannot read a due message from the delay store; retrying", "error", err)
			if bo.Wait(ctx) != nil {
				return
			}
		}
		if _, ok := bySubject[m.Subject]; !ok {
			order = append(order, m.Subject)
		}
		bySubject[m.Subject] = append(bySubject[m.Subject], dueMessage{entry: e, msg: m})
		if oldest == 0 || m.ScheduleTime < oldest {
			oldest = m.ScheduleTime
		}
	}
	d.s.inflightOldest.Store(oldest)
	defer d.s.inflightOldest.Store(0)
	for _, subject := range order {
		if !d.sendSubject(ctx, subject, bySubject[subject]) {
			return
		}
	}
}

// sendSubject sends the due messages of one subject until a broker has
// acknowledged each; false when ctx ended first.
func (d *dispatcher) sendSubject(ctx context.Context, subject string, pending []dueMessage) bool {
	set := d.s.settings.Dispatch
	routes := d.s.routes
	bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
	avoid, force := "", false
	for len(pending) > 0 {
		if ctx.Err() != nil {
			return false
		}
		groups, err := routes.groups(ctx, subject, force)
		if err != nil {
			d.s.m.sendFails.Inc()
			d.failLog.Error(d.log, "no route for due messages; retrying", "subject", subject, "messages", len(pending), "error", err)
			force = true
			if bo.Wait(ctx) != nil {
				return false
			}
			continue
		}
		g := routes.pick(subject, groups, avoid)
		payloads := make([][]byte, len(pending))
		for i := range pending {
			payloads[i] = pending[i].msg.Payload
		}
		failed, err := routes.send(ctx, g, payloads, set.SendTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			d.s.m.sendFails.Inc()
			d.failLog.Warn(d.log, "sending due messages failed; retrying on another group with fresh routes", "subject", subject, "group", g.Name, "messages", len(pending), "error", err)
			avoid, force = g.Name, true
			if bo.Wait(ctx) != nil {
				return false
			}
			continue
		}
		// A duplicate is a success: the broker has the message already.
		refused := map[string]protocol.SendResult{}
		for _, r := range failed {
			if r.Code != protocol.SendSuccess && r.Code != protocol.SendDuplicate {
				refused[r.MessageID] = r
			}
		}
		var acked, again []dueMessage
		for _, p := range pending {
			if _, ok := refused[p.msg.MessageID]; ok {
				again = append(again, p)
			} else {
				acked = append(acked, p)
			}
		}
		if !d.markDispatched(ctx, acked) {
			return false
		}
		if len(again) > 0 {
			d.s.m.sendFails.Inc()
			first := refused[again[0].msg.MessageID]
			d.failLog.Warn(d.log, "a broker refused due messages; retrying on another group with fresh routes", "subject", subject, "group", g.Name,
				"refused", len(again), "first_code", protocol.SendCodeName(first.Code), "first_remark", first.Remark)
			avoid, force = g.Name, true
			pending = again
			if bo.Wait(ctx) != nil {
				return false
			}
			continue
		}
		return true
	}
	return true
}

// markDispatched records acknowledged messages in the store (retried until
// it works: otherwise a restart would send them again) and counts them.
func (d *dispatcher) markDispatched(ctx context.Context, acked []dueMessage) bool {
	if len(acked) == 0 {
		return true
	}
	now := time.Now()
	es := make([]delaystore.Entry, len(acked))
	for i, a := range acked {
		es[i] = a.entry
		d.s.m.lateness.Observe(max(0, now.Sub(time.UnixMilli(a.msg.ScheduleTime)).Seconds()))
	}
	d.s.m.dispatched.Add(float64(len(acked)))
	d.s.dispatched.Add(int64(len(acked)))
	set := d.s.settings.Dispatch
	bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
	for {
		err := d.s.store.MarkDispatched(es)
		if err == nil {
			return true
		}
		d.markLog.Error(d.log, "cannot record dispatched messages in the delay store; retrying (a restart now would send them again)", "messages", len(es), "error", err)
		if bo.Wait(ctx) != nil {
			return false
		}
	}
}
