package lease

import (
	"context"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// Lease is a group master's lease as one member holds it.
type Lease interface {
	// Kind names the lease in logs.
	Kind() string
	// RenewEvery is how often the master renews.
	RenewEvery() time.Duration
	// Claim takes or renews the lease of this master and has the
	// metaserver record its term. It returns the moment until which the
	// master may acknowledge writes (the fencing deadline). *Refused
	// errors other than "held" (IsHeld) mean this member is no longer the
	// master.
	Claim(ctx context.Context) (until time.Time, resp protocol.LeaseResponse, err error)
	// TakeOver makes this slave the master of a silent master's group.
	TakeOver(ctx context.Context) (until time.Time, resp protocol.LeaseResponse, err error)
	// Close ends the lease's resources; a held lease is left to expire.
	Close()
}

// CallFunc sends one BROKER_LEASE of op (protocol.LeaseClaim, …) for this
// member, with its current log ends, and returns the answer.
type CallFunc func(ctx context.Context, op uint8) (protocol.LeaseResponse, error)

// Meta is the metaserver's lease (BROKER_LEASE, table broker_epoch): the
// metaserver grants it for TTL (failover.lease.ttl.ms) from the request.
type Meta struct {
	Call CallFunc
	TTL  time.Duration
}

var _ Lease = Meta{}

func (Meta) Kind() string                { return "metaserver" }
func (l Meta) RenewEvery() time.Duration { return l.TTL / 3 }
func (Meta) Close()                      {}

// Claim: the master stops acknowledging at 90% of the TTL after sending
// the request, before the metaserver can grant the lease to another (the
// margin covers clock-rate differences and the answer's travel).
func (l Meta) Claim(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	sent := time.Now()
	resp, err := l.Call(ctx, protocol.LeaseClaim)
	if err != nil {
		return time.Time{}, resp, err
	}
	return sent.Add(l.TTL * 9 / 10), resp, nil
}

func (l Meta) TakeOver(ctx context.Context) (time.Time, protocol.LeaseResponse, error) {
	resp, err := l.Call(ctx, protocol.LeasePromote)
	return time.Now().Add(l.TTL * 8 / 10), resp, err
}
