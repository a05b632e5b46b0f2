package delay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// Automatic failover (failover.enable, ours), with the broker's lease
// (services/lease): a DELAY_MASTER holds its group's lease, renewing it
// every third of its TTL, and is fenced (takes no sends, dispatches
// nothing) once the lease it last got may have run out; a refused renewal
// (the slave took over) stops it. The lease is the metaserver's
// (BROKER_LEASE, failover.lease.ttl.ms) or, when consul.address is set and
// failover.consul.lease is true (the default), a Consul session lock on
// <failover.consul.key.prefix, qmq/delay/><group>/master, whose claims and
// promotions the metaserver records as terms. A DELAY_SLAVE whose master
// has been silent for failover.master.timeout.ms, and whose copy caught up
// in this run, asks to take over; the metaserver grants it only once the
// master's lease has expired (the lock is free) and the master ran with
// wait.slave.wrote, and swaps the rows; the slave then stops, and its
// supervisor starts it again as DELAY_MASTER.

// newLeaseClient is a BROKER_LEASE client on a connection of its own.
func (s *Server) newLeaseClient() *lease.Client {
	return &lease.Client{Locate: func(ctx context.Context) (string, error) { return meta.Locate(ctx, s.settings.MetaEndpoint) }}
}

// leaseCall sends BROKER_LEASE for this server with its log ends on c.
func (r *registrar) leaseCall(c *lease.Client) lease.CallFunc {
	return func(ctx context.Context, op uint8) (protocol.LeaseResponse, error) {
		req := r.leaseRequest(op)
		return c.Call(ctx, req, min(2*time.Second, time.Duration(req.TTLMillis)*time.Millisecond/2))
	}
}

// leaseRequest is a BROKER_LEASE of op for this server with its log ends.
func (r *registrar) leaseRequest(op uint8) protocol.LeaseRequest {
	s := r.s
	return protocol.LeaseRequest{Op: op, Group: r.group, Hostname: s.hostname, ServePort: int32(s.Port()), Address: r.brokerA,
		MessageOffset: s.ds.LogEnd(delaystore.MessageLog), ActionOffset: s.ds.LogEnd(delaystore.DispatchLog),
		WaitSlaveWrote: s.settings.WaitSlaveWrote, TTLMillis: s.settings.Failover.LeaseTTL.Milliseconds()}
}

// masterLease is a DELAY_MASTER's (or a slave's, to take over) hold on its
// group's lease.
type masterLease struct {
	l     lease.Lease
	conn  *lease.Client
	until atomic.Int64 // unix ns: the fencing deadline of the last claim
	sent  atomic.Int64 // unix ns: when the last successful claim was sent
	term  atomic.Int64 // the term held (0: none yet)
}

// newMasterLease chooses the lease: Consul's when configured, else the
// metaserver's.
func (r *registrar) newMasterLease() *masterLease {
	s := r.s
	f := s.settings.Failover
	ml := &masterLease{conn: s.newLeaseClient()}
	call := r.leaseCall(ml.conn)
	if f.Consul.Enable && s.settings.ConsulAddress != "" {
		cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
		lock, err := lease.NewConsulLock(cfg, f.Consul, r.group, s.settings.ConsulDeregisterAfter)
		if err == nil {
			ml.l = &lease.Consul{Lock: lock, Call: call, Group: r.group, Address: r.brokerA,
				Holder: fmt.Sprintf("%s:%d", s.hostname, s.Port()),
				Term:   ml.term.Load,
				LastTerm: func() (int64, bool) {
					t, ok := s.readMasterTerm()
					return t.Epoch, ok && t.Group == r.group
				},
				Fence: func() { ml.until.Store(time.Now().UnixNano()) },
				Log:   s.log}
			return ml
		}
		s.log.Error("cannot use the consul lease; using the metaserver's", "error", err)
	}
	ml.l = lease.Meta{Call: call, TTL: f.LeaseTTL}
	return ml
}

// claim takes or renews the lease and moves the fencing deadline.
func (ml *masterLease) claim(ctx context.Context) (protocol.LeaseResponse, error) {
	sent := time.Now()
	until, resp, err := ml.l.Claim(ctx)
	if err != nil {
		return resp, err
	}
	ml.until.Store(until.UnixNano())
	ml.sent.Store(sent.UnixNano())
	ml.term.Store(resp.Current().Epoch)
	return resp, nil
}

func (ml *masterLease) close() {
	ml.l.Close()
	ml.conn.Close()
}

// leaseRenewedSince reports whether the master is sure to be the group's
// master after t: it runs without a lease (nobody takes over by
// themselves), or a claim sent after t succeeded.
func (s *Server) leaseRenewedSince(t time.Time) bool {
	ml := s.lease.Load()
	return ml == nil || ml.sent.Load() > t.UnixNano()
}

// fenced reports whether the master must not take sends or dispatch: with
// failover its lease may have run out, and its slave may have taken over.
func (s *Server) fenced() bool {
	ml := s.lease.Load()
	if ml == nil {
		return false
	}
	return time.Now().UnixNano() > ml.until.Load()
}

// claimAtStart takes the lease before the master goes ONLINE; it waits
// while another holds it. A refusal for another reason (this server is no
// longer the master) is returned.
func (r *registrar) claimAtStart(ctx context.Context) error {
	s := r.s
	ml := r.newMasterLease()
	logged := ""
	for {
		resp, err := ml.claim(ctx)
		switch {
		case err == nil:
			r.epoch = resp.Current().Epoch
			s.lease.Store(ml)
			s.log.Info("delay master lease held", "group", r.group, "epoch", r.epoch, "lease", ml.l.Kind())
			return nil
		case ctx.Err() != nil:
			ml.close()
			return nil
		case errors.Is(err, lease.ErrUnsupported):
			ml.close()
			s.log.Error("failover.enable=true, but " + err.Error() + "; running without a lease (no automatic failover, no fencing)")
			return nil
		case lease.IsRefused(err) && !lease.IsHeld(err):
			ml.close()
			r.demoted.Store(true)
			return fmt.Errorf("the metaserver refuses this delay server the master lease of group %s: %s", r.group, explain(err))
		}
		if msg := explain(err); msg != logged {
			logged = msg
			s.log.Warn("waiting for the delay group's master lease before serving", "lease", ml.l.Kind(), "error", msg)
		}
		if backoff.Sleep(ctx, ml.l.RenewEvery()) != nil {
			ml.close()
			return nil
		}
	}
}

// renewLease renews the lease every third of its TTL until ctx ends. It
// returns an error, which stops the server, when the metaserver refuses
// (another server is master now).
func (r *registrar) renewLease(ctx context.Context) error {
	s := r.s
	ml := s.lease.Load()
	if ml == nil {
		return nil
	}
	defer ml.close()
	failing := false
	for backoff.Sleep(ctx, ml.l.RenewEvery()) == nil {
		_, err := ml.claim(ctx)
		switch {
		case err == nil:
			if failing {
				s.log.Info("delay master lease renewed again")
			}
			failing = false
		case ctx.Err() != nil:
			return nil
		case lease.IsRefused(err) && !lease.IsHeld(err):
			r.demoted.Store(true)
			s.online.Store(false)
			return fmt.Errorf("the delay master lost its lease of group %s (%s): it stops taking sends and dispatching; start it again to rejoin as the slave (it first cuts the tail of its logs the new master never had)",
				r.group, explain(err))
		default:
			if !failing {
				s.log.Warn("cannot renew the delay master lease; sends and dispatching stop once it runs out (fencing), until it is renewed", "lease", ml.l.Kind(), "error", explain(err))
			}
			failing = true
		}
	}
	return nil
}

// watchMaster runs while this server is a DELAY_SLAVE with failover.enable:
// once the master has been silent for failover.master.timeout.ms and this
// copy caught up in this run, it asks to take over. It returns an error,
// which stops the server for its supervisor to start it as DELAY_MASTER,
// once promoted.
func (r *registrar) watchMaster(ctx context.Context) error {
	s := r.s
	ml := r.newMasterLease()
	defer ml.close()
	logged := ""
	caughtUp, lastContact := false, time.Time{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rep := s.replica.Load()
		if rep == nil || rep.slave == nil {
			return nil
		}
		st := rep.slave.Status()
		caughtUp = caughtUp || st.CaughtUp
		if st.LastContact.After(lastContact) {
			lastContact = st.LastContact
		}
		if !caughtUp || lastContact.IsZero() || time.Since(lastContact) < s.settings.Failover.MasterTimeout {
			continue
		}
		r.takingOver.Store(true)
		_, _, err := ml.l.TakeOver(ctx)
		if err != nil {
			r.takingOver.Store(false)
		}
		if err == nil {
			if c, ok := ml.l.(*lease.Consul); ok {
				// The server stops and starts again as master with a new
				// session: hand the lock on now rather than wait for this
				// session to expire. The metaserver has swapped the rows,
				// so the old master cannot use it if it grabs it meanwhile.
				c.Release(ctx)
			}
			r.demoted.Store(true) // not the slave any more; nothing to deregister
			return fmt.Errorf("the delay master of group %s was silent for %s and its lease expired: this slave took over (the metaserver now registers it as DELAY_MASTER); stopping so that its supervisor starts it again as the master",
				r.group, time.Since(lastContact).Round(time.Millisecond))
		}
		if msg := explain(err); msg != logged && ctx.Err() == nil {
			logged = msg
			s.log.Warn("delay master silent, but this slave cannot take over (yet)", "master_silent_for", time.Since(lastContact).Round(time.Millisecond), "reason", msg)
		}
		if backoff.Sleep(ctx, 300*time.Millisecond) != nil {
			return nil
		}
	}
}
