package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/protocol"
)

// masterLease is the group's master lease as this broker holds it: the
// metaserver's (table broker_epoch, dbLease) or, when consul.address is set
// with failover, a Consul session lock on qmq/broker/<group>/master
// (failover.consul.key.prefix)
// (consulLease). Either way the metaserver records the terms and their
// takeover points, and swaps the roles at a promotion.
type masterLease interface {
	// kind names the lease in logs.
	kind() string
	// renewEvery is how often the master renews.
	renewEvery() time.Duration
	// claim takes or renews the lease of this master and records its term
	// (r.epoch). It returns the moment until which the master may
	// acknowledge writes (the fencing deadline). leaseRefused errors other
	// than "held" mean this broker is no longer the master.
	claim(ctx context.Context) (until time.Time, resp protocol.LeaseResponse, err error)
	// takeOver makes this slave the master of a silent master's group.
	takeOver(ctx context.Context) (until time.Time, resp protocol.LeaseResponse, err error)
	// close ends the lease's resources; a held lease is left to expire.
	close()
}

// masterLease returns the registrar's lease, chosen once per run.
func (r *registrar) masterLease() masterLease {
	if r.ml != nil {
		return r.ml
	}
	s := r.s
	f := s.settings.Failover
	if f.Enable && f.ConsulLease && s.settings.ConsulAddress != "" {
		cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
		lock, err := consul.NewLock(cfg, consulLeaseKey(f.ConsulKeyPrefix, r.group), consul.LockOptions{
			SessionTTL: f.ConsulSessionTTL, LockDelay: f.ConsulLockDelay, HealthTTL: f.ConsulHealthTTL,
			DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter})
		if err == nil {
			r.ml = &consulLease{r: r, lock: lock}
			return r.ml
		}
		s.log.Error("cannot use the consul lease; using the metaserver's", "error", err)
	}
	r.ml = dbLease{r}
	return r.ml
}

// consulLeaseKey is the KV key of a group's master lock.
func consulLeaseKey(prefix, group string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + group + "/master"
}

// dbLease is the metaserver's lease (BROKER_LEASE, table broker_epoch).
type dbLease struct{ r *registrar }

func (dbLease) kind() string                { return "metaserver" }
func (l dbLease) renewEvery() time.Duration { return l.r.s.settings.Failover.LeaseTTL / 3 }
func (dbLease) close()                      {}

func (l dbLease) claim(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	sent := time.Now()
	resp, err := l.r.lease(ctx, protocol.LeaseClaim)
	if err != nil {
		return time.Time{}, resp, err
	}
	return sent.Add(l.r.s.settings.Failover.LeaseTTL * 9 / 10), resp, nil
}

func (l dbLease) takeOver(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	resp, err := l.r.lease(ctx, protocol.LeasePromote)
	return time.Now().Add(l.r.s.settings.Failover.LeaseTTL * 8 / 10), resp, err
}

// consulLease is a Consul session lock (TTL failover.consul.session.ttl.ms,
// behavior release, lock-delay failover.consul.lock.delay.ms, tied to a TTL
// health check of failover.consul.check.ttl.ms). Consul invalidates a
// session no sooner than the lock's TTL (the check's) after the last renewal
// reached it, and another session can take the key only after the
// lock-delay that follows; the master stops acknowledging writes at 90% of
// the TTL after sending its last successful renewal, before anyone else can
// hold the key. The metaserver is told of
// each claim and promotion with protocol.LeaseConsul: it records the terms
// and swaps the roles, checking roles and wait.slave.wrote but not its own
// lease's expiry.
type consulLease struct {
	r    *registrar
	lock *consul.Lock
	// metaFailing: the last recording of the term at the metaserver failed (logged once).
	metaFailing bool
}

// consulHolder is the lock's value.
type consulHolder struct {
	Address string `json:"address"`
	Holder  string `json:"holder"` // hostname:port, as in the metaserver's broker table
	Epoch   int64  `json:"epoch"`  // 0 until the metaserver has recorded the term
}

func (l *consulLease) kind() string              { return "consul " + l.lock.Key() }
func (l *consulLease) renewEvery() time.Duration { return l.lock.TTL() / 3 }
func (l *consulLease) close()                    { l.lock.Close() }

func (l *consulLease) value(epoch int64) []byte {
	b, _ := json.Marshal(consulHolder{Address: l.r.brokerA, Holder: fmt.Sprintf("%s:%d", l.r.s.hostname, l.r.s.Port()),
		Epoch: epoch})
	return b
}

func (l *consulLease) deadline(until time.Time) time.Time {
	return until.Add(-l.lock.TTL() / 10)
}

// consulCall bounds one call to Consul: a renewal that hangs must not
// outlast the fencing deadline.
func (l *consulLease) consulCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, min(2*time.Second, l.lock.TTL()/5))
}

func (l *consulLease) acquire(ctx context.Context, epoch int64) (time.Time, error) {
	cctx, cancel := l.consulCall(ctx)
	defer cancel()
	return l.lock.Acquire(cctx, l.value(epoch))
}

func (l *consulLease) release(ctx context.Context) {
	cctx, cancel := l.consulCall(ctx)
	defer cancel()
	l.lock.Release(cctx)
}

func (l *consulLease) claim(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	r := l.r
	wasHeld := l.lock.Held()
	until, err := l.acquire(ctx, r.epoch)
	if errors.Is(err, consul.ErrLockHeld) {
		// Held by another session: the slave that took over, or this
		// broker's own previous run until its session expires. The
		// metaserver tells which.
		if st, serr := r.lease(ctx, protocol.LeaseStatus); serr == nil {
			cur := st.Current()
			if local, ok := r.s.readEpoch(); ok && local.Group == r.group && cur.Epoch > local.Epoch && cur.Address != "" && cur.Address != r.brokerA {
				return time.Time{}, st, &leaseRefused{reason: protocol.LeaseRefusedWrongRole,
					msg: fmt.Sprintf("the consul lock %s is held and term %d of group %s belongs to %s (%s): this broker is no longer its master", l.lock.Key(), cur.Epoch, r.group, cur.Holder, cur.Address)}
			}
		}
		return time.Time{}, protocol.LeaseResponse{}, &leaseRefused{reason: protocol.LeaseRefusedHeld, msg: err.Error()}
	}
	if err != nil {
		return time.Time{}, protocol.LeaseResponse{}, err
	}
	if !wasHeld {
		r.s.log.Info("consul lock acquired", "key", l.lock.Key(), "lease_ttl", l.lock.TTL())
	}
	resp, err := r.lease(ctx, protocol.LeaseClaim|protocol.LeaseConsul)
	switch {
	case err == nil:
		if l.metaFailing {
			r.s.log.Info("the term is recorded at the metaserver again")
		}
		l.metaFailing = false
		if cur := resp.Current(); cur.Epoch != r.epoch {
			// Write the new term into the lock's value at once.
			if u, err := l.acquire(ctx, cur.Epoch); err == nil {
				until = u
			}
		}
		return l.deadline(until), resp, nil
	case refusedLease(err) && !isHeld(err):
		// The metaserver made another broker the master: stop
		// acknowledging first, then hand the lock on.
		r.s.leaseUntil.Store(time.Now().UnixNano())
		l.release(ctx)
		return time.Time{}, resp, err
	case r.epoch != 0:
		// The term was recorded in this run; the lock alone is the lease.
		if !l.metaFailing {
			r.s.log.Warn("cannot renew the term at the metaserver; the consul lock stays the lease", "error", explain(err))
		}
		l.metaFailing = true
		return l.deadline(until), protocol.LeaseResponse{Epochs: []protocol.LeaseEpoch{{Epoch: r.epoch}}}, nil
	}
	return time.Time{}, resp, err
}

func (l *consulLease) takeOver(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	r := l.r
	cctx, cancel := l.consulCall(ctx)
	v, held, err := l.lock.Holder(cctx)
	cancel()
	if err != nil {
		return time.Time{}, protocol.LeaseResponse{}, err
	} else if held {
		return time.Time{}, protocol.LeaseResponse{}, &leaseRefused{reason: protocol.LeaseRefusedHeld,
			msg: fmt.Sprintf("the consul lock %s is held (%s): the master's session has not expired", l.lock.Key(), v)}
	}
	until, err := l.acquire(ctx, 0)
	if err != nil {
		if errors.Is(err, consul.ErrLockHeld) {
			err = &leaseRefused{reason: protocol.LeaseRefusedHeld, msg: err.Error()}
		}
		return time.Time{}, protocol.LeaseResponse{}, err
	}
	resp, err := r.lease(ctx, protocol.LeasePromote|protocol.LeaseConsul)
	if err != nil {
		// Not promoted: give the lock back (this broker acknowledged nothing).
		l.release(ctx)
		return time.Time{}, resp, err
	}
	if u, err := l.acquire(ctx, resp.Current().Epoch); err == nil {
		until = u
	}
	return l.deadline(until), resp, nil
}
