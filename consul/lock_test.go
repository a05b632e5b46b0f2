package consul

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Lock against a real agent: one holder at a time, renewals, a destroyed
// session loses the lock (and its lock-delay keeps others out for a while),
// Release hands it on at once.
func TestLockRealAgent(t *testing.T) {
	a := agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Address: a.HTTPAddr, Logger: testLogger(t)}
	key := "qmq/test/" + t.Name()
	l1, err := NewLock(cfg, key, LockOptions{SessionTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if l1.TTL() != MinSessionTTL {
		t.Fatalf("TTL %v, want it raised to %v", l1.TTL(), MinSessionTTL)
	}
	l2, err := NewLock(cfg, key, LockOptions{SessionTTL: MinSessionTTL})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()

	before := time.Now()
	until, err := l1.Acquire(ctx, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if d := until.Sub(before); d < 9*time.Second || d > MinSessionTTL+time.Second {
		t.Fatalf("acquired until +%v, want about the TTL", d)
	}
	if _, err := l2.Acquire(ctx, []byte("two")); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("second holder: %v, want ErrLockHeld", err)
	}
	if v, held, err := l2.Holder(ctx); err != nil || !held || string(v) != "one" {
		t.Fatalf("Holder: %q %v %v", v, held, err)
	}
	if _, err := l1.Acquire(ctx, []byte("one again")); err != nil {
		t.Fatalf("renewal with a new value: %v", err)
	}
	if v, _, _ := l2.Holder(ctx); string(v) != "one again" {
		t.Fatalf("value after renewal %q", v)
	}

	// Release: the other takes it at once.
	l1.Release(ctx)
	if l1.Held() {
		t.Fatal("still held after Release")
	}
	if _, err := l2.Acquire(ctx, []byte("two")); err != nil {
		t.Fatalf("after Release: %v", err)
	}

	// The session destroyed behind the holder's back: Renew reports the loss.
	c := apiClient(t, a.HTTPAddr)
	if _, err := c.Session().Destroy(l2.session, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Renew(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Renew of a destroyed session: %v, want ErrLockLost", err)
	}
	if l2.Held() {
		t.Fatal("still held after the loss")
	}
	// Lock-delay 0 (1 ms is sent): the key is free at once, but the servers
	// apply a destroy and its release asynchronously; allow them a moment.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := l1.Acquire(ctx, []byte("one"))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLockHeld) || time.Now().After(deadline) {
			t.Fatalf("after the other's session was destroyed (lock-delay 0): %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l1.Release(ctx)
}

func TestLockAgentDown(t *testing.T) {
	l, err := NewLock(Config{Address: closedTCPAddr(t)}, "qmq/x", LockOptions{SessionTTL: MinSessionTTL, LockDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = l.Acquire(ctx, nil)
	if err == nil || errors.Is(err, ErrLockHeld) {
		t.Fatalf("Acquire with no agent: %v", err)
	}
	t.Log(err)
}

// A lock tied to a health check changes hands HealthTTL (plus the
// lock-delay) after its holder stopped renewing, not after the 10–20 s of a
// session TTL; a contender's failed attempt on the same agent leaves the
// holder's check alone.
func TestLockHealthTTLRealAgent(t *testing.T) {
	a := agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Address: a.HTTPAddr, Logger: testLogger(t)}
	key := "qmq/test/" + t.Name()
	opts := LockOptions{SessionTTL: MinSessionTTL, LockDelay: 500 * time.Millisecond, HealthTTL: 2 * time.Second}
	holder, err := NewLock(cfg, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	contender, err := NewLock(cfg, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer contender.Close()
	if holder.TTL() != opts.HealthTTL {
		t.Fatalf("TTL %v, want the health TTL %v", holder.TTL(), opts.HealthTTL)
	}
	before := time.Now()
	until, err := holder.Acquire(ctx, []byte("holder"))
	if err != nil {
		t.Fatal(err)
	}
	if d := until.Sub(before); d < opts.HealthTTL-100*time.Millisecond || d > opts.HealthTTL+time.Second {
		t.Fatalf("acquired until +%v, want about the health TTL %v", d, opts.HealthTTL)
	}
	// The contender fails while the holder renews, several times over the health TTL.
	for i := 0; i < 4; i++ {
		if _, err := contender.Acquire(ctx, []byte("contender")); !errors.Is(err, ErrLockHeld) {
			t.Fatalf("contender while held: %v, want ErrLockHeld", err)
		}
		time.Sleep(opts.HealthTTL / 3)
		if _, err := holder.Renew(ctx); err != nil {
			t.Fatalf("holder's renewal %d after the contender's failed attempt: %v", i, err)
		}
	}

	// The holder "dies": it stops renewing and releases nothing.
	died := time.Now()
	var took time.Duration
	for {
		if _, err := contender.Acquire(ctx, []byte("contender")); err == nil {
			took = time.Since(died)
			break
		} else if !errors.Is(err, ErrLockHeld) {
			t.Fatal(err)
		}
		if time.Since(died) > MinSessionTTL {
			t.Fatalf("the lock did not change hands within %v of its holder's last renewal (health TTL %v)", MinSessionTTL, opts.HealthTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the lock changed hands %v after the holder's last renewal (health TTL %v, lock-delay %v)", took, opts.HealthTTL, opts.LockDelay)
	if took < opts.HealthTTL-100*time.Millisecond {
		t.Fatalf("the lock changed hands after %v, before the health TTL %v: the holder's fencing margin is void", took, opts.HealthTTL)
	}
	if _, err := holder.Renew(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("the old holder's renewal: %v, want ErrLockLost", err)
	}
	contender.Release(ctx)
}
