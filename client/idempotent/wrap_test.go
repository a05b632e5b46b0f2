package idempotent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"

	"github.com/qmq-go/qmq/internal/testlog"
)

// Unit tests of Wrap and Memory. A *client.Message with subject and id can
// only come from a Producer (see the end-to-end test), so these tests key
// messages by a property through WithKeyFunc.

const keyProp = "test-key"

func byProp(m *client.Message) string { return m.Property(keyProp) }

// msg is a delivered message of group carrying business key k.
func msg(group, k string) *client.Message {
	m := &client.Message{}
	m.SetProperty(keyProp, k)
	if group != "" {
		m.SetProperty(client.PropConsumerGroup, group)
	}
	return m
}

// counting is a handler that counts its calls and fails or panics on
// demand.
type counting struct {
	calls   atomic.Int64
	success atomic.Int64
	fail    atomic.Int64 // fail this many calls, then succeed
	panics  atomic.Int64 // panic this many calls (before fail)
	block   chan struct{}
	started chan struct{}
}

func (h *counting) handle(ctx context.Context, m *client.Message) error {
	h.calls.Add(1)
	if h.started != nil {
		h.started <- struct{}{}
	}
	if h.block != nil {
		<-h.block
	}
	if h.panics.Add(-1) >= 0 {
		panic("handler exploded")
	}
	if h.fail.Add(-1) >= 0 {
		return errors.New("handler failed")
	}
	h.success.Add(1)
	return nil
}

func testLog(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: testlog.Writer(t), Level: hclog.Debug})
}

func TestWrapSkipsProcessedKeys(t *testing.T) {
	c := NewMemory(time.Hour)
	h := &counting{}
	wrapped := Wrap(c, h.handle, WithKeyFunc(byProp), WithLogger(testLog(t)))
	for i := 0; i < 3; i++ {
		if err := wrapped(context.Background(), msg("g", "order-1")); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if got := h.calls.Load(); got != 1 {
		t.Fatalf("handler ran %d times for three deliveries of one key; want 1", got)
	}
	if _, err := c.Acquire(context.Background(), "%g%order-1"); !errors.Is(err, ErrProcessed) {
		t.Fatalf("Acquire of the processed key: %v; want ErrProcessed", err)
	}
}

func TestWrapReleasesFailedKeys(t *testing.T) {
	c := NewMemory(time.Hour)
	h := &counting{}
	h.fail.Store(2)
	wrapped := Wrap(c, h.handle, WithKeyFunc(byProp))
	for i := 0; i < 2; i++ {
		err := wrapped(context.Background(), msg("g", "k"))
		if err == nil || err.Error() != "handler failed" {
			t.Fatalf("delivery %d: got %v; want the handler's own error, unchanged", i, err)
		}
		if c.Len() != 0 {
			t.Fatalf("after failure %d the key is still held", i)
		}
	}
	if err := wrapped(context.Background(), msg("g", "k")); err != nil {
		t.Fatalf("third delivery: %v", err)
	}
	if err := wrapped(context.Background(), msg("g", "k")); err != nil {
		t.Fatalf("fourth delivery: %v", err)
	}
	if h.calls.Load() != 3 || h.success.Load() != 1 {
		t.Fatalf("calls=%d successes=%d; want 3 calls (2 failed, 1 succeeded) and the duplicate skipped", h.calls.Load(), h.success.Load())
	}
}

func TestWrapKeepsRetryAt(t *testing.T) {
	at := time.Now().Add(time.Minute)
	wrapped := Wrap(NewMemory(time.Hour), func(context.Context, *client.Message) error { return client.RetryAt(at) }, WithKeyFunc(byProp))
	err := wrapped(context.Background(), msg("g", "k"))
	var ra *client.RetryAtError
	if !errors.As(err, &ra) || !ra.At.Equal(at) {
		t.Fatalf("got %v; want the handler's *client.RetryAtError for %v", err, at)
	}
}

func TestWrapPanicReleasesAndPropagates(t *testing.T) {
	c := NewMemory(time.Hour)
	h := &counting{}
	h.panics.Store(1)
	wrapped := Wrap(c, h.handle, WithKeyFunc(byProp))
	func() {
		defer func() {
			if r := recover(); r != "handler exploded" {
				t.Fatalf("recovered %v; want the handler's panic value", r)
			}
		}()
		_ = wrapped(context.Background(), msg("g", "k"))
		t.Fatal("the panic did not propagate")
	}()
	if c.Len() != 0 {
		t.Fatal("the key is still held after the handler panicked")
	}
	if err := wrapped(context.Background(), msg("g", "k")); err != nil || h.success.Load() != 1 {
		t.Fatalf("redelivery after the panic: err=%v successes=%d; want it processed", err, h.success.Load())
	}
}

func TestWrapInFlightIsRetried(t *testing.T) {
	c := NewMemory(time.Hour)
	h := &counting{block: make(chan struct{}), started: make(chan struct{}, 1)}
	wrapped := Wrap(c, h.handle, WithKeyFunc(byProp), WithInFlightRetry(7*time.Second))
	first := make(chan error, 1)
	go func() { first <- wrapped(context.Background(), msg("g", "k")) }()
	<-h.started

	before := time.Now()
	err := wrapped(context.Background(), msg("g", "k"))
	var ra *client.RetryAtError
	if !errors.Is(err, ErrInFlight) || !errors.As(err, &ra) {
		t.Fatalf("duplicate during processing: %v; want a *client.RetryAtError wrapping ErrInFlight", err)
	}
	if d := ra.At.Sub(before); d < 7*time.Second || d > 8*time.Second {
		t.Fatalf("retry in %v; want about 7s (WithInFlightRetry)", d)
	}
	close(h.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := wrapped(context.Background(), msg("g", "k")); err != nil {
		t.Fatal(err)
	}
	if h.calls.Load() != 1 {
		t.Fatalf("handler ran %d times; want 1", h.calls.Load())
	}
}

// Many goroutines deliver the same keys at once, retrying what is in
// flight as the consumer would: each key is processed exactly once.
func TestWrapConcurrentDuplicatesProcessOnce(t *testing.T) {
	testConcurrentDuplicates(t, NewMemory(time.Hour), 32, 20)
}

// testConcurrentDuplicates runs `workers` goroutines that each deliver every
// one of `keys` keys until the delivery succeeds, and checks that each key
// was handled successfully exactly once.
func testConcurrentDuplicates(t *testing.T, c Checker, workers, keys int) {
	t.Helper()
	var mu sync.Mutex
	handled := map[string]int{}
	var inFlight atomic.Int64
	wrapped := Wrap(c, func(ctx context.Context, m *client.Message) error {
		mu.Lock()
		handled[byProp(m)]++
		mu.Unlock()
		time.Sleep(time.Millisecond) // widen the window for duplicates
		return nil
	}, WithKeyFunc(byProp))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < keys; k++ {
				m := msg("g", fmt.Sprintf("key-%d", k))
				for attempt := 0; ; attempt++ {
					err := wrapped(context.Background(), m)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrInFlight) || attempt > 1000 {
						errs <- fmt.Errorf("key-%d attempt %d: %w", k, attempt, err)
						return
					}
					inFlight.Add(1)
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := 0; k < keys; k++ {
		if n := handled[fmt.Sprintf("key-%d", k)]; n != 1 {
			t.Errorf("key-%d handled %d times; want exactly 1", k, n)
		}
	}
	t.Logf("%d workers x %d keys: %d deliveries found their key in flight", workers, keys, inFlight.Load())
}

func TestWrapKeysAreNamespacedByGroup(t *testing.T) {
	c := NewMemory(time.Hour)
	h := &counting{}
	wrapped := Wrap(c, h.handle, WithKeyFunc(byProp))
	for _, g := range []string{"group-a", "group-b", "group-a", "group-b"} {
		if err := wrapped(context.Background(), msg(g, "k")); err != nil {
			t.Fatal(err)
		}
	}
	if h.calls.Load() != 2 {
		t.Fatalf("handler ran %d times for one key in two groups, each delivered twice; want 2", h.calls.Load())
	}
	for _, k := range []string{"%group-a%k", "%group-b%k"} {
		if _, err := c.Acquire(context.Background(), k); !errors.Is(err, ErrProcessed) {
			t.Errorf("key %q: %v; want ErrProcessed (stored as subject%%group%%key)", k, err)
		}
	}
}

func TestWrapRefusesEmptyKeys(t *testing.T) {
	h := &counting{}
	err := Wrap(NewMemory(time.Hour), h.handle, WithKeyFunc(byProp))(context.Background(), msg("g", ""))
	if err == nil || !strings.Contains(err.Error(), "empty key") {
		t.Fatalf("got %v; want an error about the empty key", err)
	}
	if h.calls.Load() != 0 {
		t.Fatal("the handler ran without a key")
	}
}

// failingChecker cannot reach its store.
type failingChecker struct{}

func (failingChecker) Acquire(context.Context, string) (Lease, error) {
	return nil, errors.New("connection refused")
}

func TestWrapCheckerErrorRetriesUnhandled(t *testing.T) {
	h := &counting{}
	err := Wrap(failingChecker{}, h.handle, WithKeyFunc(byProp))(context.Background(), msg("g", "k"))
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), `"%g%k"`) {
		t.Fatalf("got %v; want the checker's error with the key", err)
	}
	if h.calls.Load() != 0 {
		t.Fatal("the handler ran although the checker failed")
	}
	if err := Wrap(nil, h.handle)(context.Background(), msg("g", "k")); err == nil {
		t.Fatal("Wrap(nil, ...) handled a message")
	}
}

// The Commit/Release context must outlive a cancelled handler context.
type ctxLease struct{ commitErr, releaseErr chan error }

func (l ctxLease) HandlerContext(ctx context.Context) context.Context { return ctx }
func (l ctxLease) Commit(ctx context.Context) error                   { l.commitErr <- ctx.Err(); return nil }
func (l ctxLease) Release(ctx context.Context) error                  { l.releaseErr <- ctx.Err(); return nil }

type ctxChecker struct{ l ctxLease }

func (c ctxChecker) Acquire(context.Context, string) (Lease, error) { return c.l, nil }

func TestWrapFinishesDespiteCancellation(t *testing.T) {
	l := ctxLease{commitErr: make(chan error, 1), releaseErr: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	wrapped := Wrap(ctxChecker{l}, func(context.Context, *client.Message) error { cancel(); return nil }, WithKeyFunc(byProp))
	if err := wrapped(ctx, msg("g", "k")); err != nil {
		t.Fatal(err)
	}
	if err := <-l.commitErr; err != nil {
		t.Fatalf("Commit got a cancelled context (%v); it must survive the handler's cancellation", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	wrapped = Wrap(ctxChecker{l}, func(context.Context, *client.Message) error { cancel(); return errors.New("failed") }, WithKeyFunc(byProp))
	if err := wrapped(ctx, msg("g", "k")); err == nil {
		t.Fatal("the handler's error was lost")
	}
	if err := <-l.releaseErr; err != nil {
		t.Fatalf("Release got a cancelled context (%v); it must survive the handler's cancellation", err)
	}
}

func TestMemoryTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewMemory(time.Hour)
	c.now = func() time.Time { return now }
	ctx := context.Background()

	l, err := c.Acquire(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	l.Commit(ctx)
	inFlight, err := c.Acquire(ctx, "in-flight")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Minute)
	if _, err := c.Acquire(ctx, "old"); !errors.Is(err, ErrProcessed) {
		t.Fatalf("within the ttl: %v; want ErrProcessed", err)
	}
	now = now.Add(31 * time.Minute)
	// The sweep in Acquire drops "old" but never the in-flight key.
	l2, err := c.Acquire(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	l2.Commit(ctx)
	if c.Len() != 2 {
		t.Fatalf("%d keys after the sweep; want 2 (in-flight and new)", c.Len())
	}
	if _, err := c.Acquire(ctx, "in-flight"); !errors.Is(err, ErrInFlight) {
		t.Fatalf("in-flight key after the sweep: %v; want ErrInFlight", err)
	}
	inFlight.Release(ctx)
	l3, err := c.Acquire(ctx, "old")
	if err != nil {
		t.Fatalf("expired key: %v; want it claimable again", err)
	}
	l3.Release(ctx)
	if n := c.GarbageCollect(now.Add(time.Second)); n != 1 || c.Len() != 0 {
		t.Fatalf("GarbageCollect removed %d, %d left; want 1 and 0", n, c.Len())
	}
}
