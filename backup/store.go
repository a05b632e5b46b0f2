package backup

import (
	"context"
	"errors"
)

// Store keeps what the backup service follows and answers queries over it.
// Every Put is idempotent: writing the same entry again (after a crash,
// before the follower's checkpoint caught up) leaves one entry, so the
// follower can replay from its last checkpoint without double records.
// Implementations are safe for concurrent use.
type Store interface {
	// PutMessages writes message entries: KindNormal and KindRetry to the
	// message index, KindDead to the dead-letter index with its content.
	PutMessages(ctx context.Context, msgs []Message) error
	// PutRecords writes consume records.
	PutRecords(ctx context.Context, recs []Record) error

	// FindMessages answers a MessageQuery over normal messages (KindNormal).
	FindMessages(ctx context.Context, q MessageQuery) (MessagePage, error)
	// FindDeadLetters answers a MessageQuery over dead letters.
	FindDeadLetters(ctx context.Context, q MessageQuery) (MessagePage, error)
	// FindRetries answers a MessageQuery over the retry copies of one
	// message (q.MessageID is required), each with its ConsumerGroup and
	// its Sequence in %RETRY%<subject>%<group>: what names the copy's
	// detail (a MessageRef of KindRetry).
	FindRetries(ctx context.Context, q MessageQuery) (MessagePage, error)
	// FindMessage returns the message ref names — the normal message, or
	// ref.ConsumerGroup's retry copy or dead letter (ref.Which) — with its
	// Content if the store has it (dead letters always; others with
	// backup.message.content) and, when Located, where the group's message
	// log holds it; or ErrNotFound.
	FindMessage(ctx context.Context, ref MessageRef) (Message, error)
	// FindRecords returns a message's consume records, oldest first.
	FindRecords(ctx context.Context, q RecordQuery) ([]Record, error)

	// Sync makes every Put that returned before it durable: it survives a
	// crash of the process and of the machine. The follower calls it
	// before each checkpoint save, so a store may acknowledge a Put before
	// it is on disk (Pebble without backup.store.sync: one fsync per
	// checkpoint instead of one per Put).
	Sync(ctx context.Context) error

	// Close releases the store; calls after Close fail.
	Close() error
}

// ErrNotFound is returned (wrapped) when a looked-up entry does not exist.
var ErrNotFound = errors.New("backup: not found")

// ErrBadQuery is returned (wrapped, naming the field) for a query the store
// refuses: a missing subject, Len out of range, a time range the wrong way
// round, a Start that is not a Next of this store. The HTTP API answers it
// with 400.
var ErrBadQuery = errors.New("backup: bad query")

// ErrUnavailable is returned (wrapped) when the store's backend cannot be
// reached (HBase REST gateway down or slow); the follower retries with
// backoff and does not advance its checkpoint.
var ErrUnavailable = errors.New("backup: store unavailable")
