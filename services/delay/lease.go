package delay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// Automatic failover (failover.enable, ours), on the metaserver's
// BROKER_LEASE as the broker's (services/broker, failover.go) but without
// the Consul lease and without rejoin truncation: a DELAY_MASTER holds its
// group's lease, renewing it every third of failover.lease.ttl.ms, and is
// fenced (takes no sends, dispatches nothing) once the lease it last got
// may have run out; a metaserver that refuses the renewal (the slave took
// over) stops it. A DELAY_SLAVE whose master has been silent for
// failover.master.timeout.ms, and whose copy caught up in this run, asks
// to take over (LeasePromote); the metaserver grants it only once the
// master's lease has expired and the master ran with wait.slave.wrote, and
// swaps the rows; the slave then stops, and its supervisor starts it again
// as DELAY_MASTER.

// errLeaseUnsupported: the metaserver does not know BROKER_LEASE.
var errLeaseUnsupported = errors.New("the metaserver does not support BROKER_LEASE (a QMQ Java metaserver?): failover.enable needs qmq-go's metaserver")

// leaseRefused is the metaserver's refusal of a claim or a promotion.
type leaseRefused struct {
	reason uint8
	msg    string
}

func (e *leaseRefused) Error() string { return "BROKER_LEASE refused: " + e.msg }

func isHeld(err error) bool {
	var lr *leaseRefused
	return errors.As(err, &lr) && lr.reason == protocol.LeaseRefusedHeld
}

// leaser calls BROKER_LEASE on its own connection to the metaserver. It
// belongs to the goroutine that created it (one per role loop).
type leaser struct {
	s     *Server
	group string
	addr  string // the address registered for producers
	conn  *remoting.Client
}

func (l *leaser) close() {
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

// call sends op and returns the metaserver's answer and, for a claim,
// until when the lease is held for sure (the time the request was sent
// plus the TTL).
func (l *leaser) call(ctx context.Context, op uint8) (protocol.LeaseResponse, time.Time, error) {
	s := l.s
	ttl := s.settings.Failover.LeaseTTL
	if l.conn == nil || l.conn.Err() != nil {
		l.close()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		maddr, err := meta.Locate(cctx, s.settings.MetaEndpoint)
		if err != nil {
			return protocol.LeaseResponse{}, time.Time{}, err
		}
		if l.conn, err = remoting.Dial(cctx, maddr, 0); err != nil {
			return protocol.LeaseResponse{}, time.Time{}, err
		}
	}
	sent := time.Now()
	req := protocol.LeaseRequest{Op: op, Group: l.group, Hostname: s.hostname, ServePort: int32(s.Port()), Address: l.addr,
		MessageOffset: s.ds.LogEnd(delaystore.MessageLog), ActionOffset: s.ds.LogEnd(delaystore.DispatchLog),
		WaitSlaveWrote: s.settings.WaitSlaveWrote, TTLMillis: ttl.Milliseconds()}
	cctx, cancel := context.WithTimeout(ctx, min(2*time.Second, ttl/2))
	defer cancel()
	resp, err := l.conn.Call(cctx, protocol.CodeBrokerLease, protocol.AppendLeaseRequest(nil, req))
	if err != nil {
		l.close()
		return protocol.LeaseResponse{}, time.Time{}, err
	}
	switch resp.Header.Code {
	case protocol.CodeSuccess:
		lr, err := protocol.DecodeLeaseResponse(resp.Body)
		if err != nil {
			return protocol.LeaseResponse{}, time.Time{}, fmt.Errorf("malformed BROKER_LEASE answer: %w", err)
		}
		return lr, sent.Add(ttl), nil
	case protocol.CodeUnknownCode:
		return protocol.LeaseResponse{}, time.Time{}, errLeaseUnsupported
	case protocol.CodeBrokerReject:
		reason, msg := protocol.DecodeLeaseRefusal(resp.Body)
		return protocol.LeaseResponse{}, time.Time{}, &leaseRefused{reason: reason, msg: msg}
	}
	return protocol.LeaseResponse{}, time.Time{}, fmt.Errorf("BROKER_LEASE answered %s: %s", protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
}

// masterLease is a DELAY_MASTER's hold on its group's lease.
type masterLease struct {
	l     leaser
	until time.Time // guarded by mu
	mu    sync.Mutex
}

// fenced reports whether the master must not take sends or dispatch: with
// failover its lease may have run out, and its slave may have taken over.
func (s *Server) fenced() bool {
	ml := s.lease.Load()
	if ml == nil {
		return false
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	return time.Now().After(ml.until)
}

// claimAtStart takes the lease before the master goes ONLINE; it waits
// while another holds it. A refusal for another reason (this server is no
// longer the master) is returned.
func (r *registrar) claimAtStart(ctx context.Context) error {
	s := r.s
	ml := &masterLease{l: leaser{s: s, group: r.group, addr: r.brokerA}}
	logged := ""
	for {
		resp, until, err := ml.l.call(ctx, protocol.LeaseClaim)
		switch {
		case err == nil:
			ml.until = until
			r.epoch = resp.Current().Epoch
			s.lease.Store(ml)
			s.log.Info("delay master lease held", "group", r.group, "failover.lease.ttl.ms", s.settings.Failover.LeaseTTL.Milliseconds())
			return nil
		case ctx.Err() != nil:
			ml.l.close()
			return nil
		case errors.Is(err, errLeaseUnsupported):
			ml.l.close()
			s.log.Error("failover.enable=true, but " + err.Error() + "; running without a lease (no automatic failover, no fencing)")
			return nil
		case !isHeld(err) && errors.As(err, new(*leaseRefused)):
			ml.l.close()
			r.demoted.Store(true)
			return fmt.Errorf("the metaserver refuses this delay server the master lease of group %s: %s", r.group, explain(err))
		}
		if msg := explain(err); msg != logged {
			logged = msg
			s.log.Warn("waiting for the delay group's master lease before serving", "error", msg)
		}
		if backoff.Sleep(ctx, s.settings.Failover.LeaseTTL/3) != nil {
			ml.l.close()
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
	defer ml.l.close()
	failing := false
	for backoff.Sleep(ctx, s.settings.Failover.LeaseTTL/3) == nil {
		_, until, err := ml.l.call(ctx, protocol.LeaseClaim)
		switch {
		case err == nil:
			ml.mu.Lock()
			ml.until = until
			ml.mu.Unlock()
			if failing {
				s.log.Info("delay master lease renewed again")
			}
			failing = false
		case ctx.Err() != nil:
			return nil
		case errors.As(err, new(*leaseRefused)):
			r.demoted.Store(true)
			s.online.Store(false)
			return fmt.Errorf("the delay master lost its lease of group %s (%s): it stops taking sends and dispatching; start it again to rejoin as the slave (it first cuts the tail of its logs the new master never had)",
				r.group, explain(err))
		default:
			if !failing {
				s.log.Warn("cannot renew the delay master lease; sends and dispatching stop once it runs out (fencing), until it is renewed", "error", explain(err))
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
	l := &leaser{s: s, group: r.group, addr: r.brokerA}
	defer l.close()
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
		_, _, err := l.call(ctx, protocol.LeasePromote)
		if err == nil {
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
