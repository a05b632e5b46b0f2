package dic

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// Dictionary maps names to 6-digit ids and back. Implementations are safe
// for concurrent use.
type Dictionary interface {
	// ID returns name's id, giving it one if it has none (writers).
	ID(ctx context.Context, name string) (string, error)
	// Lookup returns name's id without giving one: ok is false when the
	// name has none (readers: a query for a name never written finds
	// nothing, and must not fill the dictionary).
	Lookup(ctx context.Context, name string) (id string, ok bool, err error)
	// Name returns the name of id, or an error wrapping ErrUnknownID.
	Name(ctx context.Context, id string) (string, error)
}

// ErrUnknownID is returned (wrapped) by Name for an id nobody was given.
var ErrUnknownID = errors.New("dic: unknown id")

// MaxNameLen is the longest subject or group name the dictionary takes
// (QMQ's qmq_dic.name is varchar(100)).
const MaxNameLen = 100

// MaxPrefixedNameLen is the longest name of a retry or dead-letter subject
// the dictionary takes: QMQ's row keys use the ids of "%RETRY%<subject>"
// and "%DEAD_RETRY%<subject>" (not of the stored
// %RETRY%<subject>%<group>: the group has its own id in the key), which
// for a 100-byte subject are up to 112 bytes. Our schema's column is
// varchar(112) for them; CheckTable refuses a narrower one.
const MaxPrefixedNameLen = len(deadRetryPrefix) + MaxNameLen

// The prefixes of the names of MaxPrefixedNameLen (rowkey.RetrySubject,
// rowkey.DeadRetrySubject).
const (
	retryPrefix     = "%RETRY%"
	deadRetryPrefix = "%DEAD_RETRY%"
)

// insertAttempts is how often an id is drawn before giving up, as QMQ.
const insertAttempts = 5

// backend is the storage under a cached dictionary.
type backend interface {
	// idOf returns the id of name, ok false if none.
	idOf(ctx context.Context, name string) (id int, ok bool, err error)
	// nameOf returns the name of id, ok false if none.
	nameOf(ctx context.Context, id int) (name string, ok bool, err error)
	// insert adds (id, name); dup is true when the id or the name is taken.
	insert(ctx context.Context, id int, name string) (dup bool, err error)
}

// cached is a Dictionary over a backend with both directions cached.
type cached struct {
	b    backend
	what string // for errors: "qmq_dic in MySQL", …

	mu     sync.RWMutex
	ids    map[string]string
	names  map[string]string
	random func() int
}

func newCached(b backend, what string) *cached {
	return &cached{b: b, what: what, ids: map[string]string{}, names: map[string]string{}, random: func() int { return rand.IntN(999999) }}
}

func format(id int) string { return fmt.Sprintf("%06d", id) }

func (c *cached) cachedID(name string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.ids[name]
	return id, ok
}

func (c *cached) remember(name, id string) {
	c.mu.Lock()
	c.ids[name] = id
	c.names[id] = name
	c.mu.Unlock()
}

func checkName(name string) error {
	if name == "" {
		return errors.New("dic: an empty name has no id")
	}
	limit := MaxNameLen
	if strings.HasPrefix(name, retryPrefix) || strings.HasPrefix(name, deadRetryPrefix) {
		limit = MaxPrefixedNameLen
	}
	if len(name) > limit {
		return fmt.Errorf("dic: name %.40q… is %d bytes long; the dictionary takes subjects and groups of at most %d bytes (QMQ's qmq_dic), %%RETRY%%/%%DEAD_RETRY%% names of at most %d", name, len(name), MaxNameLen, MaxPrefixedNameLen)
	}
	return nil
}

func (c *cached) Lookup(ctx context.Context, name string) (string, bool, error) {
	if id, ok := c.cachedID(name); ok {
		return id, true, nil
	}
	if err := checkName(name); err != nil {
		return "", false, err
	}
	n, ok, err := c.b.idOf(ctx, name)
	if err != nil {
		return "", false, fmt.Errorf("look up the id of %q in %s: %w", name, c.what, err)
	}
	if !ok {
		return "", false, nil
	}
	id := format(n)
	c.remember(name, id)
	return id, true, nil
}

func (c *cached) ID(ctx context.Context, name string) (string, error) {
	if id, ok, err := c.Lookup(ctx, name); err != nil || ok {
		return id, err
	}
	for range insertAttempts {
		n := c.random()
		dup, err := c.b.insert(ctx, n, name)
		if err != nil {
			return "", fmt.Errorf("give %q an id in %s: %w", name, c.what, err)
		}
		if !dup {
			id := format(n)
			c.remember(name, id)
			return id, nil
		}
		// The id was taken, or another backup named the same name at the
		// same time: read again before drawing a new id.
		if id, ok, err := c.Lookup(ctx, name); err != nil || ok {
			return id, err
		}
	}
	return "", fmt.Errorf("give %q an id in %s: %d random ids were all taken; the dictionary may be close to full (10^6 ids)", name, c.what, insertAttempts)
}

func (c *cached) Name(ctx context.Context, id string) (string, error) {
	c.mu.RLock()
	name, ok := c.names[id]
	c.mu.RUnlock()
	if ok {
		return name, nil
	}
	n, err := parseID(id)
	if err != nil {
		return "", err
	}
	name, ok, err = c.b.nameOf(ctx, n)
	if err != nil {
		return "", fmt.Errorf("look up the name of id %s in %s: %w", id, c.what, err)
	}
	if !ok {
		return "", fmt.Errorf("id %s in %s: %w", id, c.what, ErrUnknownID)
	}
	c.remember(name, id)
	return name, nil
}

func parseID(id string) (int, error) {
	if len(id) != 6 {
		return 0, fmt.Errorf("dictionary id %q is not 6 digits: %w", id, ErrUnknownID)
	}
	n := 0
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return 0, fmt.Errorf("dictionary id %q is not 6 digits: %w", id, ErrUnknownID)
		}
		n = n*10 + int(id[i]-'0')
	}
	return n, nil
}
