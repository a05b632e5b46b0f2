package delay

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/delaystore"
	"github.com/qmq-go/qmq/tracing"
)

// maxParked bounds the messages the dispatcher holds for retry. Beyond it,
// it takes no new due entries from the store until retries succeed (they
// wait in the store, counted by the due lag, instead of in memory).
const maxParked = 100_000

// dispatcher sends due messages to the subject's real-time brokers, as
// QMQ's delay master does: it takes batches from Store.Due, reads each
// message, sends the bytes the producer sent (CRC included, unchanged, as
// QMQ's delay server does: the delay flag and the schedule time stay in the
// message, so consumers can see when it was due) and marks them dispatched
// once a broker has acknowledged them.
//
// A subject whose send fails is parked: its messages wait for a retry with
// backoff (internal/backoff, jitter), on another group and with fresh
// routes, while the other subjects go on. Nothing is dropped. Parked
// messages keep their store entry, not their bytes (they are read again
// for each try); the store hands an entry out once per run, so the
// dispatcher is the only one holding it until MarkDispatched.
type dispatcher struct {
	s   *Server
	log hclog.Logger

	parked  map[string]*parkedSubject
	nParked int

	failLog lograte.Limiter
	markLog lograte.Limiter

	// gate holds batches back until the slave has the dispatch records
	// of earlier ones (wait.slave.wrote; dispatchgate.go).
	gate slaveGate
}

// dueMessage is one due entry with what the dispatcher needs of it; msg's
// Payload is nil while it is parked.
type dueMessage struct {
	entry delaystore.Entry
	msg   delaystore.Message
}

func newDispatcher(s *Server) *dispatcher {
	log := s.log.Named("dispatch")
	return &dispatcher{s: s, log: log, parked: map[string]*parkedSubject{}, gate: slaveGate{s: s, log: log}}
}

// run dispatches until ctx ends. Only a delay master runs it.
func (d *dispatcher) run(ctx context.Context) {
	set := d.s.settings.Dispatch
	bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
	d.log.Info("dispatching due messages to the real-time brokers", "batch", set.BatchSize)
	for ctx.Err() == nil {
		if d.s.fenced() {
			// The lease may have run out: the slave may be taking over and
			// dispatching the same messages. Wait for a renewal (or the stop).
			_ = backoff.Sleep(ctx, 50*time.Millisecond)
			continue
		}
		d.retryParked(ctx)
		// Wait for due entries, but not past the next parked retry.
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if next, ok := d.nextRetry(); ok {
			wctx, cancel = context.WithDeadline(ctx, next)
		}
		if d.nParked >= maxParked {
			<-wctx.Done()
			cancel()
			continue
		}
		es, err := d.s.store.Due(wctx, set.BatchSize)
		waited := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && waited:
			continue // a parked subject's retry is due
		case err != nil:
			d.failLog.Error(d.log, "the delay store cannot hand out due messages; retrying", "error", err)
			_ = bo.Wait(ctx)
			continue
		}
		bo.Reset()
		d.dispatch(ctx, es)
	}
}

// dispatch sends one batch of due entries, subject by subject; what fails
// is parked.
func (d *dispatcher) dispatch(ctx context.Context, es []delaystore.Entry) {
	bySubject := map[string][]dueMessage{}
	var order []string
	oldest := int64(0)
	for _, e := range es {
		m, ok := d.read(ctx, e)
		if !ok {
			return
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
	defer d.publish()
	if !d.gate.pass(ctx) {
		return // stopping: the entries are handed out again at the next start
	}
	for _, subject := range order {
		msgs := bySubject[subject]
		if p := d.parked[subject]; p != nil {
			// Behind the parked ones, in schedule order: they go together.
			d.park(subject, msgs, "")
			continue
		}
		again, group := d.sendOnce(ctx, subject, msgs, "", false)
		if len(again) > 0 {
			p := d.park(subject, again, group)
			p.retryAt = time.Now().Add(p.bo.Next())
		}
	}
}

// read reads a due entry's message, retrying while the store fails (an
// unreadable message is logged, never dropped); false when ctx ended.
func (d *dispatcher) read(ctx context.Context, e delaystore.Entry) (delaystore.Message, bool) {
	set := d.s.settings.Dispatch
	bo := backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}
	for {
		m, err := d.s.store.Read(e)
		if err == nil {
			return m, true
		}
		d.failLog.Error(d.log, "cannot read a due message from the delay store; retrying", "schedule_time", e.ScheduleTime, "sequence", e.Sequence, "error", err)
		if bo.Wait(ctx) != nil {
			return delaystore.Message{}, false
		}
	}
}

// sendOnce sends msgs of subject in one SEND_MESSAGE to a group of the
// subject (not avoid, if there is another; fresh routes when refresh),
// marks what the broker acknowledged as dispatched and returns the rest
// with the group tried ("" when there was none).
func (d *dispatcher) sendOnce(ctx context.Context, subject string, msgs []dueMessage, avoid string, refresh bool) ([]dueMessage, string) {
	set := d.s.settings.Dispatch
	routes := d.s.routes
	groups, err := routes.groups(ctx, subject, refresh)
	if err != nil {
		if ctx.Err() == nil {
			d.s.m.sendFails.Inc()
			d.failLog.Error(d.log, "no route for due messages; retrying later", "subject", subject, "messages", len(msgs), "error", err)
		}
		return msgs, ""
	}
	g := routes.pick(subject, groups, avoid)
	payloads := make([][]byte, len(msgs))
	for i := range msgs {
		payloads[i] = msgs[i].msg.Payload
	}
	var spans *tracing.Spans
	if d.s.tracer.On() {
		spans = d.s.tracer.StartWire(ctx, tracing.SpanDelayDispatch, len(msgs), func(i int) (string, string, []byte) {
			return subject, msgs[i].msg.MessageID, msgs[i].msg.Payload
		}, tracing.Group(g.Name))
	}
	failed, err := routes.send(ctx, g, payloads, set.SendTimeout)
	spans.EndWith(failed, err)
	if err != nil {
		if ctx.Err() == nil {
			d.s.m.sendFails.Inc()
			d.failLog.Warn(d.log, "sending due messages failed; retrying later on another group with fresh routes", "subject", subject, "group", g.Name, "messages", len(msgs), "error", err)
		}
		return msgs, g.Name
	}
	// A duplicate is a success: the broker has the message already.
	refused := map[string]protocol.SendResult{}
	for _, r := range failed {
		if r.Code != protocol.SendSuccess && r.Code != protocol.SendDuplicate {
			refused[r.MessageID] = r
		}
	}
	var acked, again []dueMessage
	for _, m := range msgs {
		if _, ok := refused[m.msg.MessageID]; ok {
			again = append(again, m)
		} else {
			acked = append(acked, m)
		}
	}
	d.markDispatched(ctx, acked)
	if len(again) > 0 {
		d.s.m.sendFails.Inc()
		first := refused[again[0].msg.MessageID]
		d.failLog.Warn(d.log, "a broker refused due messages; retrying later on another group with fresh routes", "subject", subject, "group", g.Name,
			"refused", len(again), "first_code", protocol.SendCodeName(first.Code), "first_remark", first.Remark)
	}
	return again, g.Name
}

// markDispatched records acknowledged messages in the store (retried until
// it works or ctx ends: otherwise a restart would send them again) and
// counts them.
func (d *dispatcher) markDispatched(ctx context.Context, acked []dueMessage) {
	if len(acked) == 0 {
		return
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
			return
		}
		d.markLog.Error(d.log, "cannot record dispatched messages in the delay store; retrying (a restart now would send them again)", "messages", len(es), "error", err)
		if bo.Wait(ctx) != nil {
			return
		}
	}
}
