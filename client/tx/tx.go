package tx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/qmq-go/qmq/client"
)

// Tx is a business transaction that can carry messages. Use the embedded
// *sql.Tx for the business statements, Send for messages, and Tx's own
// Commit and Rollback to end it: Commit commits, then sends the
// transaction's messages.
//
// Why a wrapper: database/sql has no commit hook (QMQ's Java client hooks
// Spring's transaction synchronization, beforeCommit/afterCommit), so the
// Sender cannot learn by itself that a *sql.Tx committed. Committing
// through Tx tells it. Calling the embedded Tx.Tx.Commit directly still
// commits the rows, but nothing is sent until the watchdog finds them
// (a minute or more later).
type Tx struct {
	*sql.Tx
	s *Sender

	mu   sync.Mutex
	rows []row
	done bool
}

// Begin starts a transaction on the Sender's database.
func (s *Sender) Begin(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	t, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("qmq tx: begin: %w", err)
	}
	return &Tx{Tx: t, s: s}, nil
}

// Wrap adopts a transaction begun elsewhere on the Sender's *sql.DB, for
// code that receives a *sql.Tx from a framework. It must then be ended
// through the returned Tx's Commit or Rollback.
func (s *Sender) Wrap(t *sql.Tx) *Tx { return &Tx{Tx: t, s: s} }

// Send writes msgs into the message table inside the transaction; they
// are sent once Commit has committed, and never if the transaction rolls
// back. A message the producer would refuse (see client.Message.Validate)
// is not written and Send says why; the transaction is then still usable.
// A failed INSERT is returned as is: the transaction is usually lost and
// should be rolled back. Messages must not be modified after Send.
func (t *Tx) Send(ctx context.Context, msgs ...*client.Message) error {
	for _, m := range msgs {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("qmq tx: message not stored: %w", err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return fmt.Errorf("qmq tx: send of %d messages after the transaction ended: %w", len(msgs), sql.ErrTxDone)
	}
	for _, m := range msgs {
		id, err := t.s.insert(ctx, t.Tx, m)
		if err != nil {
			return fmt.Errorf("qmq tx: insert message %s into %s: %w", m, t.s.st.table, err)
		}
		t.rows = append(t.rows, row{id: id, m: m})
	}
	return nil
}

// Commit commits the transaction and then hands its messages to the
// producer, without waiting for the brokers. When Commit fails, nothing
// is sent: if the database did commit after all (a connection lost during
// COMMIT leaves that unknown) the rows are in the table and the watchdog
// sends them.
func (t *Tx) Commit() error {
	t.mu.Lock()
	rows := t.rows
	t.rows, t.done = nil, true
	t.mu.Unlock()
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	t.s.committed(rows)
	return nil
}

// Rollback rolls the transaction back; its messages are never sent.
func (t *Tx) Rollback() error {
	t.mu.Lock()
	t.rows, t.done = nil, true
	t.mu.Unlock()
	return t.Tx.Rollback()
}

// Run runs fn in a transaction: it commits when fn returns nil (then
// sends the messages fn gave to Tx.Send) and rolls back when fn returns
// an error or panics (the panic goes on).
func (s *Sender) Run(ctx context.Context, opts *sql.TxOptions, fn func(ctx context.Context, t *Tx) error) (err error) {
	t, err := s.Begin(ctx, opts)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			if rerr := t.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
				err = errors.Join(err, fmt.Errorf("qmq tx: rollback: %w", rerr))
			}
		}
	}()
	if err := fn(ctx, t); err != nil {
		return err
	}
	committed = true
	if err := t.Commit(); err != nil {
		return fmt.Errorf("qmq tx: commit: %w", err)
	}
	return nil
}
