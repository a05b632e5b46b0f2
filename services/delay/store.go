package delay

import (
	"context"

	"github.com/qmq-go/qmq/storage/delaystore"
)

// Store is what the delay server needs of its store: *delaystore.Store
// (storage/delaystore) satisfies it. It is an interface only so that the
// server's files say exactly which of the store's methods they rely on.
type Store interface {
	// Append stores received messages, each under its schedule time.
	Append(msgs []delaystore.Message) (end int64, err error)
	// Due blocks until entries are due (or ctx ends) and returns at most max.
	Due(ctx context.Context, max int) ([]delaystore.Entry, error)
	// Read returns the message of a due entry.
	Read(e delaystore.Entry) (delaystore.Message, error)
	// MarkDispatched records entries the real-time brokers acknowledged,
	// so that a restart does not send them again.
	MarkDispatched(es []delaystore.Entry) error
	// Cancel withdraws a scheduled, undelivered message (CANCEL_DELAY),
	// durably; false when none is scheduled.
	Cancel(subject, messageID string) (bool, error)
	Stats() delaystore.Stats
	// Subjects lists the pending messages of the whole store per subject.
	Subjects() []delaystore.SubjectStats
	Close() error
}

var _ Store = (*delaystore.Store)(nil)
