package consul

import (
	"bytes"
	"context"
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
type Lock struct {
	cfg       Config
	key       string
	ttl       time.Duration
	lockDelay time.Duration

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

// NewLock prepares a lock on key; nothing is sent to Consul until Acquire.
// ttl is raised to MinSessionTTL. A lockDelay of 0 means none (Consul takes
// an unset one as its default, 15 s: 1 ms is sent instead).
func NewLock(cfg Config, key string, ttl, lockDelay time.Duration) (*Lock, error) {
	lockDelay = max(lockDelay, time.Millisecond)
	addr, err := cfg.address()
	if err != nil {
		return nil, err
	}
	client, tr, err := newAPIClient(addr, cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", displayAddr(addr), err)
	}
	return &Lock{cfg: cfg, key: strings.TrimPrefix(key, "/"), ttl: max(ttl, MinSessionTTL), lockDelay: lockDelay,
		client: client, transport: tr, addr: displayAddr(addr)}, nil
}

// Key returns the lock's KV key.
func (l *Lock) Key() string { return l.key }

// TTL returns the session TTL in use.
func (l *Lock) TTL() time.Duration { return l.ttl }

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
	id, _, err := l.client.Session().Create(&api.SessionEntry{
		Name:      "qmq lock " + l.key,
		TTL:       l.ttl.String(),
		LockDelay: l.lockDelay,
		Behavior:  api.SessionBehaviorRelease,
	}, q)
	if err != nil {
		return time.Time{}, l.wrap("create a session for", err)
	}
	ok, _, err := l.client.KV().Acquire(&api.KVPair{Key: l.key, Value: value, Session: id}, q)
	if err != nil || !ok {
		l.destroy(id)
		if err != nil {
			return time.Time{}, l.wrap("acquire", err)
		}
		return time.Time{}, fmt.Errorf("%w: %s at %s (or its lock-delay after the last holder runs)", ErrLockHeld, l.key, l.addr)
	}
	l.session, l.value = id, value
	return sent.Add(l.ttl), nil
}

// Renew renews the session. ErrLockLost means the lock is gone: the
// session was invalidated, or the key is not this session's any more.
func (l *Lock) Renew(ctx context.Context) (until time.Time, err error) {
	if l.session == "" {
		return time.Time{}, ErrLockLost
	}
	sent := time.Now()
	q := (&api.WriteOptions{}).WithContext(ctx)
	entry, _, err := l.client.Session().Renew(l.session, q)
	if err != nil {
		return time.Time{}, l.wrap("renew the session of", err)
	}
	if entry == nil {
		l.session, l.value = "", nil
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
	return sent.Add(l.ttl), nil
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
	reason, hint := explainHTTP(err, l.key, "key:write and session:write", registerAddrHint)
	msg := fmt.Sprintf("consul lock: %s %s at %s: %s", op, l.key, l.addr, reason)
	if hint != "" {
		msg += "; " + hint
	}
	return &explainedError{msg: msg, err: err}
}
