package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/protocol"
)

// ConsulKey is the KV key of a group's master lock under prefix
// (failover.consul.key.prefix).
func ConsulKey(prefix, group string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + group + "/master"
}

// ConsulHolder is the lock's value: who holds it, in which term.
type ConsulHolder struct {
	Address string `json:"address"`
	Holder  string `json:"holder"` // hostname:port, as in the metaserver's broker table
	Epoch   int64  `json:"epoch"`  // 0 until the metaserver has recorded the term
}

// Consul is a Consul session lock (consul.Lock: a session with a TTL,
// behavior release, a lock-delay, tied to a TTL health check). Consul
// invalidates a session no sooner than the lock's TTL after the last
// renewal reached it, and another session can take the key only after
// the lock-delay that follows; the master stops acknowledging writes at
// 90% of the TTL after sending its last successful renewal, before anyone
// else can hold the key. The metaserver is told of each claim and
// promotion with protocol.LeaseConsul: it records the terms and swaps the
// roles.
type Consul struct {
	Lock *consul.Lock
	// Call sends BROKER_LEASE to the metaserver (op is ORed with
	// protocol.LeaseConsul here).
	Call CallFunc
	// Group, Address (registered for clients) and Holder (hostname:port)
	// name this member, in the lock's value and in refusals.
	Group, Address, Holder string
	// Term is the term this member recorded in this run (0: none yet).
	Term func() int64
	// LastTerm is the last term of Group this store led or followed, if
	// known: a held lock with a newer term of another member means this
	// one is no longer the master.
	LastTerm func() (int64, bool)
	// Fence makes the master stop acknowledging at once (before the lock
	// is handed on).
	Fence func()
	Log   hclog.Logger

	// metaFailing: the last recording of the term at the metaserver failed (logged once).
	metaFailing bool
}

var _ Lease = (*Consul)(nil)

func (l *Consul) Kind() string              { return "consul " + l.Lock.Key() }
func (l *Consul) RenewEvery() time.Duration { return l.Lock.TTL() / 3 }
func (l *Consul) Close()                    { l.Lock.Close() }

func (l *Consul) value(epoch int64) []byte {
	b, _ := json.Marshal(ConsulHolder{Address: l.Address, Holder: l.Holder, Epoch: epoch})
	return b
}

func (l *Consul) deadline(until time.Time) time.Time {
	return until.Add(-l.Lock.TTL() / 10)
}

// consulCall bounds one call to Consul: a renewal that hangs must not
// outlast the fencing deadline.
func (l *Consul) consulCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, min(2*time.Second, l.Lock.TTL()/5))
}

func (l *Consul) acquire(ctx context.Context, epoch int64) (time.Time, error) {
	cctx, cancel := l.consulCall(ctx)
	defer cancel()
	return l.Lock.Acquire(cctx, l.value(epoch))
}

func (l *Consul) release(ctx context.Context) {
	cctx, cancel := l.consulCall(ctx)
	defer cancel()
	l.Lock.Release(cctx)
}

func (l *Consul) Claim(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	wasHeld := l.Lock.Held()
	until, err := l.acquire(ctx, l.Term())
	if errors.Is(err, consul.ErrLockHeld) {
		// Held by another session: the slave that took over, or this
		// member's own previous run until its session expires. The
		// metaserver tells which.
		if st, serr := l.Call(ctx, protocol.LeaseStatus); serr == nil {
			cur := st.Current()
			if last, ok := l.LastTerm(); ok && cur.Epoch > last && cur.Address != "" && cur.Address != l.Address {
				return time.Time{}, st, &Refused{Reason: protocol.LeaseRefusedWrongRole,
					Msg: fmt.Sprintf("the consul lock %s is held and term %d of group %s belongs to %s (%s): this server is no longer its master", l.Lock.Key(), cur.Epoch, l.Group, cur.Holder, cur.Address)}
			}
		}
		return time.Time{}, protocol.LeaseResponse{}, &Refused{Reason: protocol.LeaseRefusedHeld, Msg: err.Error()}
	}
	if err != nil {
		return time.Time{}, protocol.LeaseResponse{}, err
	}
	if !wasHeld {
		l.Log.Info("consul lock acquired", "key", l.Lock.Key(), "lease_ttl", l.Lock.TTL())
	}
	resp, err := l.Call(ctx, protocol.LeaseClaim|protocol.LeaseConsul)
	switch {
	case err == nil:
		if l.metaFailing {
			l.Log.Info("the term is recorded at the metaserver again")
		}
		l.metaFailing = false
		if cur := resp.Current(); cur.Epoch != l.Term() {
			// Write the new term into the lock's value at once.
			if u, err := l.acquire(ctx, cur.Epoch); err == nil {
				until = u
			}
		}
		return l.deadline(until), resp, nil
	case IsRefused(err) && !IsHeld(err):
		// The metaserver made another member the master: stop
		// acknowledging first, then hand the lock on.
		l.Fence()
		l.release(ctx)
		return time.Time{}, resp, err
	case l.Term() != 0:
		// The term was recorded in this run; the lock alone is the lease.
		if !l.metaFailing {
			l.Log.Warn("cannot renew the term at the metaserver; the consul lock stays the lease", "error", err)
		}
		l.metaFailing = true
		return l.deadline(until), protocol.LeaseResponse{Epochs: []protocol.LeaseEpoch{{Epoch: l.Term()}}}, nil
	}
	return time.Time{}, resp, err
}

// Release gives the lock up at once (Close lets it expire). A delay
// server's slave that took over releases it as it stops, so that its
// restart as master (a new session) finds the lock free instead of held by
// its own previous session until that expires.
func (l *Consul) Release(ctx context.Context) { l.release(ctx) }

func (l *Consul) TakeOver(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	cctx, cancel := l.consulCall(ctx)
	v, held, err := l.Lock.Holder(cctx)
	cancel()
	if err != nil {
		return time.Time{}, protocol.LeaseResponse{}, err
	} else if held {
		return time.Time{}, protocol.LeaseResponse{}, &Refused{Reason: protocol.LeaseRefusedHeld,
			Msg: fmt.Sprintf("the consul lock %s is held (%s): the master's session has not expired", l.Lock.Key(), v)}
	}
	until, err := l.acquire(ctx, 0)
	if err != nil {
		if errors.Is(err, consul.ErrLockHeld) {
			err = &Refused{Reason: protocol.LeaseRefusedHeld, Msg: err.Error()}
		}
		return time.Time{}, protocol.LeaseResponse{}, err
	}
	resp, err := l.Call(ctx, protocol.LeasePromote|protocol.LeaseConsul)
	if err != nil {
		// Not promoted: give the lock back (this member acknowledged nothing).
		l.release(ctx)
		return time.Time{}, resp, err
	}
	if u, err := l.acquire(ctx, resp.Current().Epoch); err == nil {
		until = u
	}
	return l.deadline(until), resp, nil
}

// ConsulSettings are the Consul lease's keys (failover.consul.*), the
// same for brokers and delay servers.
type ConsulSettings struct {
	Enable     bool          // failover.consul.lease: use it when consul.address is set
	SessionTTL time.Duration // failover.consul.session.ttl.ms (Consul's minimum is 10 s)
	LockDelay  time.Duration // failover.consul.lock.delay.ms
	HealthTTL  time.Duration // failover.consul.check.ttl.ms (0: the session TTL only)
	KeyPrefix  string        // failover.consul.key.prefix: the lock is <prefix><group>/master
}

// NewConsulLock creates the group's lock on the agent of cfg.
func NewConsulLock(cfg consul.Config, s ConsulSettings, group string, deregisterAfter time.Duration) (*consul.Lock, error) {
	return consul.NewLock(cfg, ConsulKey(s.KeyPrefix, group), consul.LockOptions{
		SessionTTL: s.SessionTTL, LockDelay: s.LockDelay, HealthTTL: s.HealthTTL, DeregisterCriticalAfter: deregisterAfter})
}
