package metaserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Failover (ours). SwapMasterSlave is the management action of a manual
// failover; BROKER_LEASE is how brokers hold their group's master lease,
// promote a slave when the lease has expired, and learn the takeover points
// of earlier terms (table broker_epoch, see store.FailoverStore). Brokers
// whose lease is a Consul session lock OR protocol.LeaseConsul into the op:
// they hold the lock, so the term is recorded (and a promotion granted)
// without checking the stored expiry; roles and wait.slave.wrote are still
// checked (store.Claim.External).

// swapMasterSlave swaps the roles of a group's master and slave rows in one
// transaction and marks the group NRW until the new master registers ONLINE.
func (s *Server) swapMasterSlave(ctx context.Context, p params) any {
	group := p.str("brokerGroup")
	if group == "" {
		return fail("please provide broker group name (--brokerGroup)")
	}
	nm, ns, err := s.store.SwapMasterSlave(ctx, group)
	if errors.Is(err, store.ErrNotFound) {
		return fail("cannot swap: %v; list the group with qmq tools ListBrokers --brokerGroup=%s", err, group)
	}
	if err != nil {
		return fail("swap master and slave failed, caused by: %v", err)
	}
	if _, err := s.store.UpdateBrokerGroupState(ctx, group, store.StateNRW, time.Now()); err != nil {
		s.log.Warn("swap: cannot mark the group NRW until its new master is online", "group", group, "error", err)
	}
	_ = s.cache.refresh(ctx)
	s.log.Info("master and slave swapped", "group", group, "new_master", nm.Hostname, "new_slave", ns.Hostname)
	return ok(map[string]any{"master": toBrokerMeta(nm), "slave": toBrokerMeta(ns)})
}

// handleLease serves BROKER_LEASE.
func (s *Server) handleLease(ctx context.Context, req *remoting.Request) protocol.Frame {
	r, err := protocol.DecodeLeaseRequest(req.Frame.Body)
	if err != nil {
		return errorResponse(req, protocol.CodeParamError, "%v", err)
	}
	if r.Group == "" {
		return errorResponse(req, protocol.CodeParamError, "BROKER_LEASE from %s names no group", req.RemoteAddr)
	}
	now := time.Now()
	external := r.Op&protocol.LeaseConsul != 0
	r.Op &^= protocol.LeaseConsul
	switch r.Op {
	case protocol.LeaseStatus:
	case protocol.LeaseClaim, protocol.LeasePromote:
		ttl := time.Duration(r.TTLMillis) * time.Millisecond
		if ttl < 100*time.Millisecond || ttl > 10*time.Minute {
			return errorResponse(req, protocol.CodeParamError, "BROKER_LEASE ttl %d ms out of range [100, 600000]", r.TTLMillis)
		}
		c := store.Claim{Group: r.Group, Hostname: r.Hostname, ServePort: int(r.ServePort), Address: r.Address,
			MessageOffset: r.MessageOffset, ActionOffset: r.ActionOffset, WaitSlaveWrote: r.WaitSlaveWrote, TTL: ttl,
			Promote: r.Op == protocol.LeasePromote, External: external}
		before, _ := s.store.ListEpochs(ctx, r.Group)
		e, err := s.store.ClaimLease(ctx, c, now)
		switch {
		case errors.Is(err, store.ErrLeaseHeld), errors.Is(err, store.ErrUnsafe), errors.Is(err, store.ErrWrongRole), errors.Is(err, store.ErrNotFound):
			return protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerReject, protocol.AppendLeaseRefusal(nil, leaseRefusal(err), err.Error()))
		case err != nil:
			return errorResponse(req, protocol.CodeBrokerError, "lease of group %s: %v", r.Group, err)
		}
		if len(before) == 0 || before[len(before)-1].Epoch != e.Epoch {
			s.log.Info("new master term", "group", r.Group, "epoch", e.Epoch, "holder", e.Holder, "address", e.Address,
				"takeover_message_offset", e.MessageOffset, "takeover_action_offset", e.ActionOffset, "promoted", c.Promote, "consul_lease", external)
			if c.Promote {
				// The old master's address must not be given to clients any more.
				if _, err := s.store.UpdateBrokerGroupState(ctx, r.Group, store.StateNRW, now); err != nil {
					s.log.Warn("promotion: cannot mark the group NRW until its new master is online", "group", r.Group, "error", err)
				}
				_ = s.cache.refresh(ctx)
			}
		}
	default:
		return errorResponse(req, protocol.CodeParamError, "BROKER_LEASE op %d unknown (1 claim, 2 promote, 3 status)", r.Op)
	}
	resp, err := s.leaseStatus(ctx, r.Group, now)
	if err != nil {
		return errorResponse(req, protocol.CodeBrokerError, "%v", err)
	}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendLeaseResponse(nil, resp))
}

// leaseRefusal is the reason code sent with a refused claim or promotion.
func leaseRefusal(err error) uint8 {
	switch {
	case errors.Is(err, store.ErrLeaseHeld):
		return protocol.LeaseRefusedHeld
	case errors.Is(err, store.ErrUnsafe):
		return protocol.LeaseRefusedUnsafe
	case errors.Is(err, store.ErrWrongRole):
		return protocol.LeaseRefusedWrongRole
	case errors.Is(err, store.ErrNotFound):
		return protocol.LeaseRefusedUnknownBroker
	}
	return protocol.LeaseRefusedOther
}

func (s *Server) leaseStatus(ctx context.Context, group string, now time.Time) (protocol.LeaseResponse, error) {
	eps, err := s.store.ListEpochs(ctx, group)
	if err != nil {
		return protocol.LeaseResponse{}, err
	}
	var resp protocol.LeaseResponse
	for _, e := range eps {
		resp.Epochs = append(resp.Epochs, protocol.LeaseEpoch{Epoch: e.Epoch, Holder: e.Holder, Address: e.Address, MessageOffset: e.MessageOffset, ActionOffset: e.ActionOffset})
	}
	if n := len(eps); n > 0 {
		resp.ExpiresInMillis = eps[n-1].ExpireMillis - now.UnixMilli()
		resp.WaitSlaveWrote = eps[n-1].WaitSlaveWrote
	}
	return resp, nil
}

// staleMaster explains why a master's ONLINE or HEARTBEAT is refused: the
// group's current term belongs to another address (it was failed over).
// "" when the broker may register (or the database cannot tell).
func (s *Server) staleMaster(ctx context.Context, r protocol.BrokerRegisterRequest) string {
	eps, err := s.store.ListEpochs(ctx, r.GroupName)
	if err != nil || len(eps) == 0 {
		return ""
	}
	cur := eps[len(eps)-1]
	if cur.Address == "" || cur.Address == r.BrokerAddress {
		return ""
	}
	return fmt.Sprintf("%s is no longer the master of group %s: epoch %d belongs to %s (%s); this broker must rejoin as the group's slave (restart it, or it does so by itself when its lease is refused)",
		r.BrokerAddress, r.GroupName, cur.Epoch, cur.Holder, cur.Address)
}
