package broker

import (
	"fmt"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/services/lease"
)

// masterLease is the group's master lease as this broker holds it
// (services/lease): the metaserver's (table broker_epoch, lease.Meta) or,
// when consul.address is set with failover, a Consul session lock on
// qmq/broker/<group>/master (failover.consul.key.prefix; lease.Consul).
// Either way the metaserver records the terms and their takeover points,
// and swaps the roles at a promotion.
type masterLease = lease.Lease

// masterLease returns the registrar's lease, chosen once per run.
func (r *registrar) masterLease() masterLease {
	if r.ml != nil {
		return r.ml
	}
	s := r.s
	f := s.settings.Failover
	if f.Enable && f.ConsulLease && s.settings.ConsulAddress != "" {
		cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
		lock, err := lease.NewConsulLock(cfg, lease.ConsulSettings{SessionTTL: f.ConsulSessionTTL, LockDelay: f.ConsulLockDelay,
			HealthTTL: f.ConsulHealthTTL, KeyPrefix: f.ConsulKeyPrefix}, r.group, s.settings.ConsulDeregisterAfter)
		if err == nil {
			r.ml = &lease.Consul{Lock: lock, Call: r.lease, Group: r.group, Address: r.brokerA,
				Holder: fmt.Sprintf("%s:%d", s.hostname, s.Port()),
				Term:   func() int64 { return r.epoch },
				LastTerm: func() (int64, bool) {
					local, ok := s.readEpoch()
					return local.Epoch, ok && local.Group == r.group
				},
				Fence: func() { s.leaseUntil.Store(time.Now().UnixNano()) },
				Log:   s.log}
			return r.ml
		}
		s.log.Error("cannot use the consul lease; using the metaserver's", "error", err)
	}
	r.ml = lease.Meta{Call: r.lease, TTL: f.LeaseTTL}
	return r.ml
}

// consulLeaseKey is the KV key of a group's master lock.
func consulLeaseKey(prefix, group string) string { return lease.ConsulKey(prefix, group) }

// consulHolder is the lock's value.
type consulHolder = lease.ConsulHolder
