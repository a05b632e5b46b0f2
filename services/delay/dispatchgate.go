package delay

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// The slave gate (wait.slave.wrote): a master sends a batch of due
// messages only once its slave has confirmed every dispatch record the
// master has written so far, those of the batches before included.
//
// Why: after a failover the new master dispatches every due message its
// copy of the dispatch log does not record as sent. A master that went on
// dispatching while cut off from its slave (its lease still valid) would
// make the new master send all of those again: hundreds of duplicates in
// a second. With the gate, a master whose slave stops confirming stops
// dispatching after the batch in flight (which also fences it before its
// lease runs out), so a failover sends again at most one batch:
// delay.send.batch.size messages.
//
// A slave that is gone for good (crashed, or the group has just failed
// over and the former master is not back) must not stop deliveries,
// though. So the gate gives up waiting after wait.slave.wrote.timeout.ms,
// or at once when no slave has connected since this master started, if
// the master is still the group's master: without failover.enable
// (nobody takes over by themselves), or with a lease renewed since the
// wait began (the metaserver still counts on this master, so the slave
// cannot take over before that lease runs out, and a master cut off from
// the metaserver as well is fenced first). It then dispatches without the
// slave ("slave gone": logged, /health dispatchWithoutSlave) until the
// slave confirms the dispatch log's end again. A failover during that time
// (a second fault: the master lost too) sends again what was dispatched
// meanwhile.
//
// The wait is one replication round trip per batch (the slave's next copy
// request reports its end). Measured with 100,000 messages due in the same
// second on a pair (TestPerfDelaySameSecondWithSlave), it was lost in the
// noise of a shared machine, and so was the gain of a pipelined gate that
// lets batch N go out while batch N-1's records are copied (which would
// double the bound): the gate stays serial.
//
// Without wait.slave.wrote nothing waits: the slave's copy may be behind,
// and a failover may send again whatever it lacks.
type slaveGate struct {
	s       *Server
	log     hclog.Logger
	waitLog lograte.Limiter
	// slaveGone: the gate gave up waiting for the slave and dispatches
	// without it until the slave confirms the dispatch log again.
	slaveGone bool
}

// gatePoll bounds one wait for the slave, so that the gate notices a
// fence, a stop or a replica that changed.
const gatePoll = 100 * time.Millisecond

// pass returns true when the next batch may go out: the slave has
// confirmed the dispatch log as it ends now (or is gone, see slaveGate)
// and the master is not fenced; false when ctx ended. The batch's entries
// stay with the caller either way: a stopping server hands them out again
// at its next start.
func (g *slaveGate) pass(ctx context.Context) bool {
	s := g.s
	if !s.settings.WaitSlaveWrote {
		return ctx.Err() == nil
	}
	defer s.gateWaitingSince.Store(0)
	// Everything written so far, cancellations included: the records of
	// the batches sent before are all there (MarkDispatched returned).
	want := s.ds.LogEnd(delaystore.DispatchLog)
	start := time.Now()
	for {
		if ctx.Err() != nil {
			return false
		}
		r := s.replica.Load()
		if r == nil || r.master == nil {
			return true // no replication (yet): nothing to wait for
		}
		if s.fenced() {
			if backoff.Sleep(ctx, gatePoll) != nil {
				return false
			}
		} else if g.slaveGone {
			if r.master.Lag().ActionOffset >= want {
				g.slaveGone = false
				s.dispatchWithoutSlave.Store(false)
				g.log.Info("the slave confirms the dispatch log again: dispatching waits for it again (wait.slave.wrote)", "dispatch_log_end", want)
			}
			return true
		} else {
			wctx, cancel := context.WithTimeout(ctx, gatePoll)
			err := r.master.WaitSlaveWroteActions(wctx, want)
			cancel()
			if err == nil && !s.fenced() {
				return true
			}
		}
		waited := time.Since(start)
		s.gateWaitingSince.Store(start.UnixNano())
		l := r.master.Lag()
		// No slave has asked this master anything since it started (a
		// promoted slave whose former master is not back): no slave holds
		// what it dispatches, so none could take over without it either.
		noSlaveYet := l.LastRequest.IsZero()
		if (waited >= s.settings.SlaveWroteTimeout || noSlaveYet) && !s.fenced() && s.leaseRenewedSince(start) {
			g.slaveGone = true
			s.dispatchWithoutSlave.Store(true)
			g.log.Warn("the slave has not confirmed the dispatch log for wait.slave.wrote.timeout.ms and this server is still the group's master: dispatching without the slave until it confirms again (should the group fail over meanwhile, what goes out now is sent again)",
				"waited", waited.Round(time.Millisecond), "slave", l.Slave, "slave_dispatch_log_end", l.ActionOffset, "needed", want,
				"last_slave_request_ago", sinceOrNever(l.LastRequest))
			return true
		}
		if waited >= time.Second {
			g.waitLog.Warn(g.log, "dispatching waits for the slave to confirm the dispatch log (wait.slave.wrote): due messages are held back until it does, so that a failover does not send them twice",
				"waited", waited.Round(time.Millisecond), "slave", l.Slave, "slave_dispatch_log_end", l.ActionOffset, "needed", want,
				"last_slave_request_ago", sinceOrNever(l.LastRequest), "fenced", s.fenced())
		}
	}
}

// sinceOrNever is how long ago t was, or "never".
func sinceOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Millisecond).String()
}

// gateWaiting is how long dispatching has been waiting for the slave to
// confirm dispatch records (0: not waiting).
func (s *Server) gateWaiting() time.Duration {
	ns := s.gateWaitingSince.Load()
	if ns == 0 {
		return 0
	}
	return time.Since(time.Unix(0, ns))
}
