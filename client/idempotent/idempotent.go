package idempotent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
)

// ErrProcessed means the key has already been processed successfully: the
// message is a duplicate and must not be handled again.
var ErrProcessed = errors.New("already processed")

// ErrInFlight means another handler (in this process or another one) holds
// the key right now. Its outcome is unknown, so the message must be neither
// handled nor acknowledged: it is retried later.
var ErrInFlight = errors.New("being processed by another handler")

// Checker records which keys have been processed. Implementations must be
// safe for concurrent use. Memory and SQL are the checkers of this package;
// another store (Redis, say) only needs Acquire and a Lease.
type Checker interface {
	// Acquire claims key for processing. It returns an error wrapping
	// ErrProcessed when key was processed successfully before, one wrapping
	// ErrInFlight when someone else holds it, another error when the store
	// cannot tell (the message is then retried), or a Lease that the caller
	// must end with exactly one Commit or Release.
	Acquire(ctx context.Context, key string) (Lease, error)
}

// Lease is a claimed key.
type Lease interface {
	// HandlerContext returns the context the handler runs with. The
	// transactional SQL checker attaches its transaction (see Tx); others
	// return ctx.
	HandlerContext(ctx context.Context) context.Context
	// Commit records the key as processed: the handler succeeded. An error
	// means the success could not be made durable and the message must be
	// handled again (a transaction that failed to commit); failures that do
	// not require that are logged by the checker instead.
	Commit(ctx context.Context) error
	// Release forgets the claim so that a redelivery processes the key: the
	// handler failed or panicked.
	Release(ctx context.Context) error
}

// Handler is the signature of client.Consumer.Run's handler.
type Handler = func(ctx context.Context, m *client.Message) error

// KeyFunc extracts the business key of a message (default: its QMQ id).
// It must return the same non-empty key for every delivery of the same
// logical message, retries included.
type KeyFunc func(m *client.Message) string

// MessageID is the default KeyFunc: the QMQ message id, which a consumer's
// retry copies (%RETRY% and delayed retries) and a producer's re-sends of
// the same *client.Message keep.
func MessageID(m *client.Message) string { return m.ID() }

// Key is the key stored for m: <subject>%<consumer group>%<business key>,
// the layout of QMQ's AbstractIdempotentChecker.keyOf, so one table can
// serve several subjects and consumer groups (each group processes every
// message once) and rows written by QMQ's Java client are recognised. The
// subject is the subscribed one, also for messages pulled from %RETRY%; the
// group is qmq_consumerGroupName, which the consumer sets on delivery (""
// for broadcast consumers).
func Key(m *client.Message, businessKey string) string {
	return m.Subject() + "%" + m.Property(client.PropConsumerGroup) + "%" + businessKey
}

// DefaultInFlightRetry is how far in the future a message whose key is in
// flight elsewhere asks to be retried (WithInFlightRetry).
const DefaultInFlightRetry = 5 * time.Second

// DefaultFinishTimeout bounds Commit and Release (WithFinishTimeout).
const DefaultFinishTimeout = 10 * time.Second

type wrapConfig struct {
	key           KeyFunc
	log           hclog.Logger
	inFlightRetry time.Duration
	finishTimeout time.Duration
}

// Option configures Wrap.
type Option func(*wrapConfig)

// WithKeyFunc sets the business key (default MessageID). Wrap prefixes it
// with subject and consumer group (see Key).
func WithKeyFunc(f KeyFunc) Option {
	return func(c *wrapConfig) {
		if f != nil {
			c.key = f
		}
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l hclog.Logger) Option {
	return func(c *wrapConfig) {
		if l != nil {
			c.log = l
		}
	}
}

// WithInFlightRetry sets when a message whose key another handler holds is
// retried: it is returned as client.RetryAt(now+d), which the consumer
// sends as a delay message if a delay broker group exists and otherwise
// retries through %RETRY% after the broker's retry delay. Every such retry
// counts against the message's maximum retries.
func WithInFlightRetry(d time.Duration) Option {
	return func(c *wrapConfig) {
		if d > 0 {
			c.inFlightRetry = d
		}
	}
}

// WithFinishTimeout bounds Commit and Release. They run on a context that
// is not cancelled with the handler's, so that a consumer shutting down
// still records what its handlers did.
func WithFinishTimeout(d time.Duration) Option {
	return func(c *wrapConfig) {
		if d > 0 {
			c.finishTimeout = d
		}
	}
}

// Wrap returns a handler for client.Consumer.Run that runs h at most once
// successfully per key:
//
//   - key processed before: h is not called, the message is acknowledged;
//   - key held by another handler: h is not called, the message is retried
//     later (see WithInFlightRetry);
//   - h returns nil: the key is committed, the message acknowledged;
//   - h returns an error: the key is released and the error returned, so the
//     consumer retries the message (client.RetryAt keeps working);
//   - h panics: the key is released and the panic goes on to the consumer,
//     which recovers it and retries the message;
//   - the checker fails: h is not called and the message is retried.
func Wrap(c Checker, h Handler, opts ...Option) Handler {
	cfg := wrapConfig{key: MessageID, log: hclog.NewNullLogger(), inFlightRetry: DefaultInFlightRetry, finishTimeout: DefaultFinishTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if c == nil || h == nil {
		// A configuration mistake: fail every message loudly rather than
		// run without deduplication.
		return func(context.Context, *client.Message) error {
			return errors.New("idempotent.Wrap: checker and handler must not be nil")
		}
	}
	log := cfg.log.Named("idempotent")
	return func(ctx context.Context, m *client.Message) (err error) {
		bk := cfg.key(m)
		if bk == "" {
			return fmt.Errorf("idempotent: the key function returned an empty key for message %s; fix the key function (the message is retried)", m)
		}
		key := Key(m, bk)
		lease, err := c.Acquire(ctx, key)
		switch {
		case errors.Is(err, ErrProcessed):
			log.Debug("duplicate message skipped", "message", m.String(), "key", key, "times", m.Times())
			return nil
		case errors.Is(err, ErrInFlight):
			log.Debug("key in flight elsewhere; retrying later", "message", m.String(), "key", key)
			return &client.RetryAtError{At: time.Now().Add(cfg.inFlightRetry),
				Cause: fmt.Errorf("idempotent: message %s: key %q: %w", m.ID(), key, err)}
		case err != nil:
			return fmt.Errorf("idempotent: message %s: cannot check key %q, so it is not handled (it is retried): %w", m.ID(), key, err)
		}

		// finish bounds Commit and Release without inheriting the handler
		// context's cancellation: an unrecorded outcome costs more than a
		// few milliseconds of shutdown.
		finish := func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.WithoutCancel(ctx), cfg.finishTimeout)
		}
		ended := false
		defer func() {
			if ended {
				return
			}
			// h panicked (or called runtime.Goexit). No recover: the panic
			// keeps unwinding to the consumer, which logs its stack and
			// retries the message, once the key is free again.
			fctx, cancel := finish()
			defer cancel()
			if rerr := lease.Release(fctx); rerr != nil {
				log.Error("handler panicked and the key could not be released", "message", m.String(), "key", key, "error", rerr)
			}
		}()
		herr := h(lease.HandlerContext(ctx), m)
		ended = true

		fctx, cancel := finish()
		defer cancel()
		if herr != nil {
			if rerr := lease.Release(fctx); rerr != nil {
				log.Error("handler failed and the key could not be released", "message", m.String(), "key", key, "error", rerr)
				// %w on herr keeps errors.As(err, *client.RetryAtError) working.
				return fmt.Errorf("%w (and releasing idempotency key %q failed: %v)", herr, key, rerr)
			}
			return herr
		}
		if cerr := lease.Commit(fctx); cerr != nil {
			return fmt.Errorf("idempotent: message %s: handler succeeded but key %q could not be committed, so the message is retried: %w", m.ID(), key, cerr)
		}
		return nil
	}
}
