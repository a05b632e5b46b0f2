package consul

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Lock is a Consul KV lock held through a session with a TTL (ours; the
// brokers' master lease when consul.address is set with failover). It is
// not safe for concurrent use: one goroutine owns it.
//
// Timing guarantees, from Consul's documentation: a session invalidates no
// sooner than its TTL after the server handled the last renewal (Consul may
// wait up to twice the TTL), and once invalidated its locks cannot be taken
// by another session for LockDelay. Renew therefore returns the last moment
// the holder can be sure that nobody else holds the lock: when its request
// was sent, plus the TTL (the caller keeps its own margin below it).
//
// Consul's session TTL is at least 10 s and a dead holder's session may live
// twice that, so a lock on the TTL alone changes hands 10 to 20 s after its
// holder died. With LockOptions.HealthTTL the session is also tied to a TTL
// health check that Acquire and Renew pass: the servers invalidate a session
// as soon as one of its checks is critical, so the lock is free HealthTTL
// (plus LockDelay) after the last pass. The check belongs to a service of its
// own (name LockServiceName, one per Lock), so that its going critical hides
// nothing else registered on the node; the agent removes a service whose check
// stayed critical for LockOptions.DeregisterCriticalAfter. TTL() is then HealthTTL.
type Lock struct {
	cfg        Config
	key        string
	ttl        time.Duration // the session's
	lockDelay  time.Duration
	healthTTL  time.Duration // 0: no health check
	deregAfter time.Duration // the check's DeregisterCriticalServiceAfter
	serviceID  string        // the health check's service (with healthTTL)
	checkID    string

	client    *api.Client
	transport *http.Transport
	addr      string
	session   string // "" when none
	value     []byte // the value last written by this session
}

// Lock errors.
var (
	// ErrLockHeld: another session holds the key.
	ErrLockHeld = errors.New("the consul lock is held by another session")
	// ErrLockLost: this holder's session was invalidated (expired or
	// destroyed) or the key no longer names it.
	ErrLockLost = errors.New("the consul lock was lost (session invalidated)")
)

// MinSessionTTL is Consul's smallest session TTL.
const MinSessionTTL = 10 * time.Second

// LockServiceName names the services that carry locks' health checks
// (LockOptions.HealthTTL).
const LockServiceName = "qmq-lock"

// LockOptions tune a Lock.
type LockOptions struct {
	// SessionTTL is raised to MinSessionTTL.
	SessionTTL time.Duration
	// LockDelay keeps others out after the session is invalidated. 0 means
	// none (Consul takes an unset one as its default, 15 s: 1 ms is sent).
	LockDelay time.Duration
	// HealthTTL, if positive, ties the session to a TTL health check passed
	// by Acquire and Renew (see Lock); at most SessionTTL is used.
	HealthTTL time.Duration
	// DeregisterCriticalAfter: the agent removes the check's service once it
	// has been critical this long (a killed holder's qmq-lock service does
	// not stay critical forever); 0 = DefaultDeregisterCriticalAfter.
	DeregisterCriticalAfter time.Duration
}

// NewLock prepares a lock on key; nothing is sent to Consul until Acquire.
func NewLock(cfg Config, key string, o LockOptions) (*Lock, error) {
	addr, err := cfg.address()
	if err != nil {
		return nil, err
	}
	client, tr, err := newAPIClient(addr, cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", displayAddr(addr), err)
	}
	key = strings.TrimPrefix(key, "/")
	l := &Lock{cfg: cfg, key: key, ttl: max(o.SessionTTL, MinSessionTTL), lockDelay: max(o.LockDelay, time.Millisecond),
		deregAfter: o.DeregisterCriticalAfter, client: client, transport: tr, addr: displayAddr(addr)}
	if o.HealthTTL > 0 {
		l.healthTTL = min(o.HealthTTL, l.ttl)
		// One service per Lock: a holder's failed attempt or release removes
		// only its own check, even where two contenders share an agent.
		var suffix [4]byte
		_, _ = rand.Read(suffix[:])
		l.serviceID = fmt.Sprintf("%s-%s-%x", LockServiceName, strings.NewReplacer("/", "-", ":", "-").Replace(key), suffix)
		l.checkID = "service:" + l.serviceID
	}
	return l, nil
}

// Key returns the lock's KV key.
func (l *Lock) Key() string { return l.key }

// TTL is how long after a renewal the lock may be lost without the holder
// learning it: HealthTTL when set, else the session TTL.
func (l *Lock) TTL() time.Duration {
	if l.healthTTL > 0 {
		return l.healthTTL
	}
	return l.ttl
}

// Held reports whether this Lock believes it holds the key.
func (l *Lock) Held() bool { return l.session != "" }

// Acquire takes the key with value, creating a session first. It returns
// ErrLockHeld when another session holds it (or its lock-delay runs), and
// the moment until which the lock is surely this holder's.
func (l *Lock) Acquire(ctx context.Context, value []byte) (until time.Time, err error) {
	q := (&api.WriteOptions{}).WithContext(ctx)
	if l.session != "" {
		// Held: renew, then write the value again (an acquisition by the
		// holding session succeeds and updates it).
		if until, err = l.Renew(ctx); err != nil {
			return time.Time{}, err
		}
		if bytes.Equal(value, l.value) {
			return until, nil // Renew checked that the key is still this session's
		}
		ok, _, err := l.client.KV().Acquire(&api.KVPair{Key: l.key, Value: value, Session: l.session}, q)
		if err != nil {
			return time.Time{}, l.wrap("write", err)
		}
		if !ok {
			l.release(ctx)
			return time.Time{}, fmt.Errorf("%w: %s at %s", ErrLockLost, l.key, l.addr)
		}
		l.value = value
		return until, nil
	}
	sent := time.Now()
	entry := &api.SessionEntry{
		Name:      "qmq lock " + l.key,
		TTL:       l.ttl.String(),
		LockDelay: l.lockDelay,
		Behavior:  api.SessionBehaviorRelease,
	}
	if l.healthTTL > 0 {
		if err := l.registerCheck(ctx); err != nil {
			return time.Time{}, err
		}
		entry.NodeChecks = []string{"serfHealth"} // Consul's default, kept
		entry.ServiceChecks = []api.ServiceCheck{{ID: l.checkID}}
	}
	id, _, err := l.client.Session().Create(entry, q)
	if err != nil {
		l.deregisterCheck()
		return time.Time{}, l.wrap("create a session for", err)
	}
	ok, _, err := l.client.KV().Acquire(&api.KVPair{Key: l.key, Value: value, Session: id}, q)
	if err != nil || !ok {
		l.destroy(id)
		l.deregisterCheck()
		if err != nil {
			return time.Time{}, l.wrap("acquire", err)
		}
		return time.Time{}, fmt.Errorf("%w: %s at %s (or its lock-delay after the last holder runs)", ErrLockHeld, l.key, l.addr)
	}
	l.session, l.value = id, value
	return sent.Add(l.TTL()), nil
}

// registerCheck (re)registers the lock's service with its TTL check passing.
func (l *Lock) registerCheck(ctx context.Context) error {
	reg := &api.AgentServiceRegistration{
		ID:   l.serviceID,
		Name: LockServiceName,
		Meta: map[string]string{"key": l.key},
		Check: &api.AgentServiceCheck{
			CheckID:                        l.checkID,
			Name:                           "qmq lock " + l.key + " holder",
			TTL:                            l.healthTTL.String(),
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: DeregisterAfter(l.deregAfter),
		},
	}
	if err := l.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return l.wrap("register the health check of", err)
	}
	return nil
}

// passCheck resets the health check's TTL.
func (l *Lock) passCheck(ctx context.Context) error {
	if err := l.client.Agent().UpdateTTLOpts(l.checkID, "held", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return l.wrap("pass the health check of", err)
	}
	return nil
}

// deregisterCheck removes the lock's service (best effort: the agent
// removes it DeregisterCriticalAfter after its check went critical anyway).
func (l *Lock) deregisterCheck() {
	if l.healthTTL <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.client.Agent().ServiceDeregisterOpts(l.serviceID, (&api.QueryOptions{}).WithContext(ctx))
}

// Renew renews the session. ErrLockLost means the lock is gone: the
// session was invalidated, or the key is not this session's any more.
func (l *Lock) Renew(ctx context.Context) (until time.Time, err error) {
	if l.session == "" {
		return time.Time{}, ErrLockLost
	}
	sent := time.Now()
	if l.healthTTL > 0 {
		if err := l.passCheck(ctx); err != nil {
			return time.Time{}, err
		}
	}
	q := (&api.WriteOptions{}).WithContext(ctx)
	entry, _, err := l.client.Session().Renew(l.session, q)
	if err != nil {
		return time.Time{}, l.wrap("renew the session of", err)
	}
	if entry == nil {
		l.session, l.value = "", nil
		l.deregisterCheck()
		return time.Time{}, fmt.Errorf("%w: %s at %s", ErrLockLost, l.key, l.addr)
	}
	kv, _, err := l.client.KV().Get(l.key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return time.Time{}, l.wrap("read", err)
	}
	if kv == nil || kv.Session != l.session {
		l.release(ctx)
		return time.Time{}, fmt.Errorf("%w: %s at %s no longer names this session", ErrLockLost, l.key, l.addr)
	}
	return sent.Add(l.TTL()), nil
}

// Holder returns the key's value and whether a session holds it.
func (l *Lock) Holder(ctx context.Context) (value []byte, held bool, err error) {
	kv, _, err := l.client.KV().Get(l.key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, false, l.wrap("read", err)
	}
	if kv == nil {
		return nil, false, nil
	}
	return kv.Value, kv.Session != "", nil
}

// Release gives the key up and destroys the session (best effort: an
// unreachable agent lets the session expire by itself).
func (l *Lock) Release(ctx context.Context) {
	if l.session != "" {
		l.release(ctx)
	}
}

func (l *Lock) release(ctx context.Context) {
	id := l.session
	l.session, l.value = "", nil
	q := (&api.WriteOptions{}).WithContext(ctx)
	_, _, _ = l.client.KV().Release(&api.KVPair{Key: l.key, Session: id}, q)
	l.destroy(id)
	l.deregisterCheck()
}

func (l *Lock) destroy(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = l.client.Session().Destroy(id, (&api.WriteOptions{}).WithContext(ctx))
}

// Close closes the client's idle connections. It does not release the
// lock: a holder that stops without knowing whether its side effects have
// ended lets the session expire (Release first to hand the lock on at once).
func (l *Lock) Close() {
	l.transport.CloseIdleConnections()
}

func (l *Lock) wrap(op string, err error) error {
	perms := "key:write and session:write"
	if l.healthTTL > 0 {
		perms = "key:write, session:write and service:write on " + LockServiceName
	}
	reason, hint := explainHTTP(err, l.key, perms, registerAddrHint)
	msg := fmt.Sprintf("consul lock: %s %s at %s: %s", op, l.key, l.addr, reason)
	if hint != "" {
		msg += "; " + hint
	}
	return &explainedError{msg: msg, err: err}
}
