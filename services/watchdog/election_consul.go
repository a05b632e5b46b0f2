package watchdog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/consul"
)

// The election through Consul (ours; the issue's "a Consul lock instead
// when Consul is configured"): with consul.address set and
// election.consul.enable true (the default), the watchdogs of a namespace
// contend for the KV key <election.consul.key.prefix><namespace>/leader
// (qmq/watchdog/default/leader) with consul.Lock, the lock of the
// brokers' Consul master lease, and the leader_election table is not used.
//
//   - The lock is held by a session (TTL election.consul.session.ttl.ms,
//     10 s, Consul's minimum; behavior release; lock-delay
//     election.consul.lock.delay.ms, 2 s) tied to a TTL health check of
//     election.consul.check.ttl.ms (3 s) that the leader passes with every
//     renewal, every third of the check's TTL (1 s).
//   - A session can end for reasons other than its TTLs: its node's agent
//     leaves the cluster (stopped cleanly: at once) or is declared failed
//     by gossip, or someone destroys it. Whatever the reason, once a
//     session is invalidated nobody can take its locks for the lock-delay,
//     and the invalidation comes after the last renewal the servers
//     accepted. So the leader stops sending, counted from when it sent its
//     last successful renewal, after the shorter of: the check's TTL less
//     one renewal interval (the check cannot have gone critical before),
//     and nine tenths of the lock-delay (nobody can hold the key before).
//     With the defaults that is 1.8 s: it has stopped before another
//     watchdog can hold the key, so two never send at once. The lock-delay
//     must therefore exceed two renewal intervals (validated), so that one
//     late renewal does not end the lead.
//   - A leader whose agent is stopped or cannot be reached steps down
//     within 1.8 s of its last renewal and /health says why
//     (electionError).
//   - A killed leader's check goes critical within 3 s of its last pass;
//     the lock-delay (2 s) and the followers' next attempt (every second)
//     follow: another leads 4 to 6 s after the kill (measured 4.7 to 4.9 s: see
//     TestConsulTakeoverAfterLeaderKilled). A leader stopped cleanly
//     releases the key at once (no lock-delay). With
//     election.consul.check.ttl.ms=0 the session TTL alone holds the lock
//     (Consul may keep a dead session for up to twice its TTL: a takeover
//     in 10 to 20 s, renewals every 3.3 s, a lock-delay of at least 6.7 s).
//
// The key's value is the leader's node name (<hostname>-<pid>), shown as
// "leader" in /health. The check is a service of its own named qmq-lock
// (consul.LockServiceName), so its going critical hides nothing else.

// consulElection is the election on a Consul lock.
type consulElection struct {
	lock *consul.Lock
	node string
	addr string
	use  time.Duration // how long after a renewal was sent the leader keeps sending (see above)
}

// consulElectionKey is the KV key of a namespace's lock.
func consulElectionKey(prefix, namespace string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + namespace + "/leader"
}

// useConsulElection reports whether the settings choose the Consul lock.
func (s Settings) useConsulElection() bool { return s.ConsulElection && s.ConsulAddress != "" }

func newConsulElection(s Settings, node string, log hclog.Logger) (*consulElection, error) {
	cfg := consul.Config{Address: s.ConsulAddress, Token: s.ConsulToken, Logger: log}
	lock, err := consul.NewLock(cfg, consulElectionKey(s.ConsulKeyPrefix, s.Namespace), consul.LockOptions{
		SessionTTL: s.ConsulSessionTTL, LockDelay: s.ConsulLockDelay, HealthTTL: s.ConsulCheckTTL,
		DeregisterCriticalAfter: s.ConsulDeregisterAfter})
	if err != nil {
		return nil, fmt.Errorf("the leader election through consul (consul.address=%s, election.consul.enable=true): %w", s.ConsulAddress, err)
	}
	e := &consulElection{lock: lock, node: node, addr: s.ConsulAddress}
	e.use = consulLeadUse(lock.TTL(), s.ConsulLockDelay)
	return e, nil
}

// consulLeadUse is how long after sending a renewal the leader may keep
// sending: the shorter of the check's TTL less one renewal interval and
// nine tenths of the lock-delay.
func consulLeadUse(ttl, lockDelay time.Duration) time.Duration {
	return min(ttl-ttl/3, lockDelay*9/10)
}

func (e *consulElection) describe() string {
	return fmt.Sprintf("consul lock %s at %s", e.lock.Key(), e.addr)
}

// every renews three times per TTL, as the brokers' Consul lease does.
func (e *consulElection) every() time.Duration { return e.lock.TTL() / 3 }

func (e *consulElection) try(ctx context.Context) (bool, time.Time, error) {
	if !e.lock.Held() {
		// A follower looks before it tries: an attempt registers a check
		// and creates a session, only to remove both when the key is held.
		if _, held, err := e.lock.Holder(ctx); err != nil {
			return false, time.Time{}, fmt.Errorf("leader election (%s): %w", e.describe(), err)
		} else if held {
			return false, time.Time{}, nil
		}
	}
	until, err := e.lock.Acquire(ctx, []byte(e.node))
	switch {
	case errors.Is(err, consul.ErrLockHeld):
		return false, time.Time{}, nil // another watchdog leads, or the lock-delay after the last one runs
	case errors.Is(err, consul.ErrLockLost):
		return false, time.Time{}, fmt.Errorf("%w: %w", errLeadLost, err)
	case err != nil:
		return false, time.Time{}, fmt.Errorf("leader election (%s): %w", e.describe(), err)
	}
	sent := until.Add(-e.lock.TTL()) // Acquire's until is the renewal's send time plus the TTL
	return true, sent.Add(e.use), nil
}

func (e *consulElection) holder(ctx context.Context) (string, error) {
	v, held, err := e.lock.Holder(ctx)
	if err != nil || !held {
		return "", err
	}
	return string(v), nil
}

func (e *consulElection) release(ctx context.Context) error {
	e.lock.Release(ctx) // best effort: an unreachable agent lets the session expire
	return nil
}

func (e *consulElection) close() { e.lock.Close() }
