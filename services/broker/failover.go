package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/storage"
)

// Failover (ours): the group's master lease and terms (BROKER_LEASE, kept by
// the metaserver in table broker_epoch), fencing, the runtime promotion of a
// slave and the rejoin of a former master. See doc.go.

// epochFile, in store.root, is the last term of the group this store
// followed or led.
const epochFile = "failover-epoch.json"

type localEpoch struct {
	Group string `json:"group"`
	Epoch int64  `json:"epoch"`
}

func (s *instance) readEpoch() (localEpoch, bool) {
	b, err := os.ReadFile(filepath.Join(s.settings.Store.Root, epochFile))
	if err != nil {
		return localEpoch{}, false
	}
	var e localEpoch
	if json.Unmarshal(b, &e) != nil {
		return localEpoch{}, false
	}
	return e, true
}

func (s *instance) writeEpoch(group string, epoch int64) {
	if e, ok := s.readEpoch(); ok && e.Group == group && e.Epoch == epoch {
		return
	}
	b, _ := json.Marshal(localEpoch{Group: group, Epoch: epoch})
	path := filepath.Join(s.settings.Store.Root, epochFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		err = os.Rename(tmp, path)
		if err == nil {
			return
		}
	}
	s.log.Warn("cannot record the group's term in store.root; a later failover may then refuse to rejoin this broker automatically", "path", path)
}

// errLeaseUnsupported: the metaserver does not know BROKER_LEASE (a Java one).
var errLeaseUnsupported = lease.ErrUnsupported

// rejoinError ends Server.runOnce: the broker restarts in-process as the
// group's slave, first cutting its logs at the given offsets (-1: leave).
type rejoinError struct {
	reason                string
	messageEnd, actionEnd int64
	truncate              bool
}

func (e *rejoinError) Error() string { return "rejoin as slave: " + e.reason }

// lease calls BROKER_LEASE on the registrar's metaserver (services/lease),
// with this store's log ends.
func (r *registrar) lease(ctx context.Context, op uint8) (protocol.LeaseResponse, error) {
	s := r.s
	if r.leaseConn == nil {
		r.leaseConn = &lease.Client{
			Locate: func(ctx context.Context) (string, error) {
				if addr := r.getLeaseAddr(); addr != "" {
					return addr, nil
				}
				return meta.Locate(ctx, s.settings.MetaEndpoint)
			},
			DialFailed: func(string) { r.setLeaseAddr("") }, // locate it again next time
		}
	}
	req := protocol.LeaseRequest{Op: op, Group: r.group, Hostname: s.hostname, ServePort: int32(s.Port()), Address: r.brokerA,
		MessageOffset: s.store.LogEnd(storage.MessageLog), ActionOffset: s.store.LogEnd(storage.ActionLog),
		WaitSlaveWrote: s.settings.WaitSlaveWrote, TTLMillis: s.settings.Failover.LeaseTTL.Milliseconds()}
	return r.leaseConn.Call(ctx, req, min(2*time.Second, s.settings.Failover.LeaseTTL/2))
}

// leaseRefused is the metaserver's refusal of a BROKER_LEASE claim or
// promotion (services/lease).
type leaseRefused = lease.Refused

// refusedLease reports whether err is the metaserver's refusal of a lease
// or of a registration (not a failure to ask).
func refusedLease(err error) bool { return lease.IsRefused(err) }

// isHeld reports whether err refuses a lease because another broker holds
// it and it has not expired: the caller may get it later.
func isHeld(err error) bool { return lease.IsHeld(err) }

// claim takes or renews the master lease. Refusals other than "held by
// another, not expired yet" mean this broker is no longer the master.
func (r *registrar) claim(ctx context.Context) error {
	until, resp, err := r.masterLease().Claim(ctx)
	if err != nil {
		return err
	}
	cur := resp.Current()
	r.s.writeEpoch(r.group, cur.Epoch)
	r.s.leaseUntil.Store(until.UnixNano())
	r.epoch = cur.Epoch
	return nil
}

// claimAtStart takes the lease before the master goes ONLINE. Without
// failover.enable a metaserver that cannot be asked is no reason to wait:
// the term then only serves a later rejoin.
func (r *registrar) claimAtStart(ctx context.Context) error {
	s := r.s
	logged := ""
	for {
		err := r.claim(ctx)
		switch {
		case err == nil:
			s.log.Info("master lease held", "group", r.group, "epoch", r.epoch, "lease", r.masterLease().Kind(), "failover.enable", s.settings.Failover.Enable)
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errLeaseUnsupported):
			if s.settings.Failover.Enable {
				s.log.Error("failover.enable=true, but " + err.Error() + "; running without a lease (no automatic failover, no fencing)")
			}
			s.leaseUntil.Store(0)
			return nil
		case refusedLease(err) && !isHeld(err):
			return &rejoinError{reason: explain(err)}
		case !s.settings.Failover.Enable && !isHeld(err):
			s.log.Warn("cannot record this master's term at the metaserver; going on without (failover.enable=false)", "error", explain(err))
			return nil
		}
		if msg := explain(err); msg != logged {
			logged = msg
			s.log.Warn("waiting for the group's master lease before serving", "lease", r.masterLease().Kind(), "retry_in", r.masterLease().RenewEvery(), "error", msg)
		}
		if backoff.Sleep(ctx, r.masterLease().RenewEvery()) != nil {
			return ctx.Err()
		}
	}
}

// renewLoop renews the lease every third of its TTL until ctx ends. It
// sends on lost when the metaserver says another broker is master now.
func (r *registrar) renewLoop(ctx context.Context, lost chan<- error) {
	s := r.s
	failing := false
	for backoff.Sleep(ctx, r.masterLease().RenewEvery()) == nil {
		err := r.claim(ctx)
		switch {
		case err == nil:
			if failing {
				s.log.Info("master lease renewed again", "epoch", r.epoch)
			}
			failing = false
		case ctx.Err() != nil:
			return
		case refusedLease(err):
			select {
			case lost <- &rejoinError{reason: explain(err)}:
			default:
			}
			return
		default:
			if !failing && s.settings.Failover.Enable {
				s.log.Warn("cannot renew the master lease; sends are refused once it runs out (fencing), until it is renewed", "lease", r.masterLease().Kind(),
					"lease_left", time.Until(time.Unix(0, s.leaseUntil.Load())).Round(time.Millisecond), "error", explain(err))
			}
			failing = true
		}
	}
}

// fenced reports whether the master must not acknowledge writes: with
// failover its lease may have expired for the metaserver, and the slave may
// have taken over.
func (s *instance) fenced() bool {
	if !s.settings.Failover.Enable {
		return false
	}
	until := s.leaseUntil.Load()
	return until != 0 && time.Now().UnixNano() > until
}

// checkTerm compares this store's last term with the group's (slave side,
// before copying): a store that led or followed an older term may hold a
// tail the newer master never had; it is cut at the first newer term's
// takeover point (a rejoinError asks for the cut).
func (r *registrar) checkTerm(ctx context.Context) error {
	s := r.s
	resp, err := r.lease(ctx, protocol.LeaseStatus)
	if err != nil {
		if !errors.Is(err, errLeaseUnsupported) {
			s.log.Warn("cannot read the group's terms from the metaserver; copying without the check (a former master is refused if it is ahead)", "error", explain(err))
		}
		return nil
	}
	if len(resp.Epochs) == 0 {
		return nil
	}
	cur := resp.Current()
	local, ok := s.readEpoch()
	if !ok || local.Group != r.group || local.Epoch >= cur.Epoch {
		s.writeEpoch(r.group, cur.Epoch)
		return nil
	}
	var next protocol.LeaseEpoch
	for _, e := range resp.Epochs {
		if e.Epoch > local.Epoch {
			next = e
			break
		}
	}
	msgEnd, actEnd := s.store.LogEnd(storage.MessageLog), s.store.LogEnd(storage.ActionLog)
	if msgEnd <= next.MessageOffset && actEnd <= next.ActionOffset {
		s.writeEpoch(r.group, cur.Epoch)
		return nil
	}
	return &rejoinError{
		reason: fmt.Sprintf("this store was last in term %d of group %s; term %d (%s) took over at message-log offset %d and action-log offset %d, and this store goes on to %d and %d: the tail was never replicated and is cut",
			local.Epoch, r.group, next.Epoch, next.Holder, next.MessageOffset, next.ActionOffset, msgEnd, actEnd),
		messageEnd: min(msgEnd, next.MessageOffset), actionEnd: min(actEnd, next.ActionOffset), truncate: true,
	}
}

// watchMaster runs while this broker is the slave with failover.enable: once
// the master has been silent for failover.master.timeout.ms and this copy
// has caught up in this run, it asks the metaserver to promote it (granted
// only when the master's lease has expired and the master ran with
// wait.slave.wrote). It returns true once promoted: the caller serves as
// master. The slave's replication is stopped around each attempt so that
// the takeover point is this store's final end.
func (r *registrar) watchMaster(ctx context.Context) (promoted bool) {
	s := r.s
	f := s.settings.Failover
	logged := ""
	caughtUp, lastContact := false, time.Time{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		rep := s.replica.Load()
		if rep == nil || rep.slave == nil {
			return false
		}
		// Both latch across the Slave instances of this run: the copy only grows.
		st := rep.slave.Status()
		caughtUp = caughtUp || st.CaughtUp
		if st.LastContact.After(lastContact) {
			lastContact = st.LastContact
		}
		if !caughtUp || lastContact.IsZero() || time.Since(lastContact) < f.MasterTimeout {
			continue
		}
		rep.stopNow()
		until, resp, err := r.masterLease().TakeOver(ctx)
		if err == nil {
			cur := resp.Current()
			s.writeEpoch(r.group, cur.Epoch)
			s.leaseUntil.Store(until.UnixNano())
			r.epoch = cur.Epoch
			s.log.Warn("master silent; this slave took over as the group's master", "group", r.group, "epoch", cur.Epoch, "lease", r.masterLease().Kind(),
				"master_silent_for", time.Since(lastContact).Round(time.Millisecond),
				"takeover_message_offset", cur.MessageOffset, "takeover_action_offset", cur.ActionOffset)
			return true
		}
		if msg := explain(err); msg != logged && ctx.Err() == nil {
			logged = msg
			s.log.Warn("master silent, but this slave cannot take over (yet)", "master_silent_for", time.Since(lastContact).Round(time.Millisecond), "reason", msg)
		}
		// Copy again while waiting (the master may come back).
		if err := s.startReplica(ctx, protocol.RoleSlave, r.masterSync); err != nil {
			s.log.Error("cannot restart replication", "error", err)
			return false
		}
		if backoff.Sleep(ctx, 300*time.Millisecond) != nil {
			return false
		}
	}
}
