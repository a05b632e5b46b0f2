package delay

import (
	"context"
	"time"

	"github.com/qmq-go/qmq/internal/backoff"
)

// Parking (dispatch.go): a subject whose send failed keeps its due
// messages here, entries only, until its retry time; new due messages of
// the subject queue behind them, so a subject's messages go out in order.

// parkedSubject is a subject whose last send failed.
type parkedSubject struct {
	msgs    []dueMessage
	retryAt time.Time
	bo      backoff.Backoff
	avoid   string // the group of the last failed try
}

// park adds msgs (without their bytes) to subject's parked messages.
func (d *dispatcher) park(subject string, msgs []dueMessage, failedGroup string) *parkedSubject {
	p := d.parked[subject]
	if p == nil {
		set := d.s.settings.Dispatch
		p = &parkedSubject{bo: backoff.Backoff{Min: set.RetryMin, Max: set.RetryMax}}
		d.parked[subject] = p
	}
	for _, m := range msgs {
		m.msg.Payload = nil
		p.msgs = append(p.msgs, m)
	}
	if failedGroup != "" {
		p.avoid = failedGroup
	}
	d.nParked += len(msgs)
	return p
}

// publish makes the parked messages visible to /health and /metrics:
// their count and the schedule time of the oldest (each subject's are in
// schedule order).
func (d *dispatcher) publish() {
	oldest := int64(0)
	for _, p := range d.parked {
		if len(p.msgs) > 0 && (oldest == 0 || p.msgs[0].msg.ScheduleTime < oldest) {
			oldest = p.msgs[0].msg.ScheduleTime
		}
	}
	d.s.parkedOldest.Store(oldest)
	d.s.parked.Store(int64(d.nParked))
}

// nextRetry is the earliest retry time of a parked subject.
func (d *dispatcher) nextRetry() (time.Time, bool) {
	var next time.Time
	for _, p := range d.parked {
		if next.IsZero() || p.retryAt.Before(next) {
			next = p.retryAt
		}
	}
	return next, !next.IsZero()
}

// retryParked tries again the parked subjects whose retry time has come,
// in batches of delay.send.batch.size, re-reading their messages.
func (d *dispatcher) retryParked(ctx context.Context) {
	set := d.s.settings.Dispatch
	defer d.publish()
	now := time.Now()
	for subject, p := range d.parked {
		if ctx.Err() != nil {
			return
		}
		if p.retryAt.After(now) {
			continue
		}
		for len(p.msgs) > 0 {
			n := min(len(p.msgs), set.BatchSize)
			batch := make([]dueMessage, n)
			for i := range batch {
				m, ok := d.read(ctx, p.msgs[i].entry)
				if !ok {
					return
				}
				batch[i] = dueMessage{entry: p.msgs[i].entry, msg: m}
			}
			d.s.inflightOldest.Store(batch[0].msg.ScheduleTime)
			if !d.gate.pass(ctx) {
				d.s.inflightOldest.Store(0)
				return
			}
			again, group := d.sendOnce(ctx, subject, batch, p.avoid, true)
			d.s.inflightOldest.Store(0)
			sent := n - len(again)
			d.nParked -= sent
			if len(again) > 0 {
				// Keep the failed ones first, then the rest, in order.
				rest := append([]dueMessage(nil), p.msgs[n:]...)
				p.msgs = p.msgs[:0]
				for _, m := range again {
					m.msg.Payload = nil
					p.msgs = append(p.msgs, m)
				}
				p.msgs = append(p.msgs, rest...)
				p.avoid = group
				p.retryAt = time.Now().Add(p.bo.Next())
				break
			}
			p.msgs = p.msgs[n:]
		}
		if len(p.msgs) == 0 {
			delete(d.parked, subject)
			d.log.Info("due messages of the subject are going out again", "subject", subject)
		}
	}
}
