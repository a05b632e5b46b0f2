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
	l1, err := NewLock(cfg, key, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	if l1.TTL() != MinSessionTTL {
		t.Fatalf("TTL %v, want it raised to %v", l1.TTL(), MinSessionTTL)
	}
	l2, err := NewLock(cfg, key, MinSessionTTL, 0)
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
	if _, err := l1.Acquire(ctx, []byte("one")); err != nil {
		t.Fatalf("after the other's session was destroyed (lock-delay 0): %v", err)
	}
	l1.Release(ctx)
}

func TestLockAgentDown(t *testing.T) {
	l, err := NewLock(Config{Address: closedTCPAddr(t)}, "qmq/x", MinSessionTTL, time.Second)
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
