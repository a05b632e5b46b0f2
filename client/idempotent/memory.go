package idempotent

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is a Checker that keeps keys in this process's memory: for tests
// and for consumers whose duplicates all reach the same process. Nothing
// survives a restart, and two processes do not see each other's keys.
//
// Processed keys are forgotten ttl after they were committed (a duplicate
// arriving later is handled again); keys being processed are never
// forgotten while their handler runs.
type Memory struct {
	ttl time.Duration
	now func() time.Time // replaced by tests

	mu        sync.Mutex
	keys      map[string]*memEntry
	lastSweep time.Time
}

type memEntry struct {
	done bool
	at   time.Time // commit time (done)
}

// NewMemory returns an in-memory checker that forgets processed keys ttl
// after their commit. ttl <= 0 keeps them until GarbageCollect removes
// them.
//
// Expired keys are swept during Acquire, at most every ttl/4, so there is
// no background goroutine to stop.
func NewMemory(ttl time.Duration) *Memory {
	return &Memory{ttl: ttl, now: time.Now, keys: map[string]*memEntry{}}
}

// Acquire implements Checker.
func (c *Memory) Acquire(_ context.Context, key string) (Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.ttl > 0 && now.Sub(c.lastSweep) >= c.ttl/4 {
		c.sweepLocked(now.Add(-c.ttl))
		c.lastSweep = now
	}
	if e, ok := c.keys[key]; ok {
		if !e.done {
			return nil, fmt.Errorf("key %q: %w", key, ErrInFlight)
		}
		if c.ttl <= 0 || now.Sub(e.at) < c.ttl {
			return nil, fmt.Errorf("key %q (at %s): %w", key, e.at.Format(time.RFC3339), ErrProcessed)
		}
	}
	e := &memEntry{}
	c.keys[key] = e
	return &memLease{c: c, key: key, e: e}, nil
}

// GarbageCollect forgets keys committed before before and returns how many.
// Keys being processed stay.
func (c *Memory) GarbageCollect(before time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sweepLocked(before)
}

func (c *Memory) sweepLocked(before time.Time) int {
	n := 0
	for k, e := range c.keys {
		if e.done && e.at.Before(before) {
			delete(c.keys, k)
			n++
		}
	}
	return n
}

// Len returns how many keys are held (processed or in flight).
func (c *Memory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

type memLease struct {
	c   *Memory
	key string
	e   *memEntry // identity: only this claim's entry is changed
}

func (l *memLease) HandlerContext(ctx context.Context) context.Context { return ctx }

func (l *memLease) Commit(context.Context) error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.keys[l.key] != l.e {
		// Cannot happen through Wrap (in-flight entries are never swept);
		// report it rather than overwrite someone else's claim.
		return fmt.Errorf("key %q: the claim was lost before commit", l.key)
	}
	l.e.done, l.e.at = true, l.c.now()
	return nil
}

func (l *memLease) Release(context.Context) error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.keys[l.key] == l.e {
		delete(l.c.keys, l.key)
	}
	return nil
}
