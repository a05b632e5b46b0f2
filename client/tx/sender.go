package tx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
)

// asyncSender is what the Sender needs of a producer; *client.Producer
// has it, and tests substitute brokers that refuse or fail.
type asyncSender interface {
	SendAsync(m *client.Message, done func(*client.Message, error)) error
}

// row is a message stored in the table: its id there and the message.
type row struct {
	id int64
	m  *client.Message
}

// result is the outcome of one send of a row.
type result struct {
	row
	err error
}

// retained is a row whose send failed, waiting to be sent again.
type retained struct {
	row
	attempts int
	due      time.Time
}

// Sender writes messages into the table inside business transactions
// (Begin, Run, Wrap) and, once a transaction has committed, sends them
// through the producer and deletes the rows of the sent ones. It is safe
// for concurrent use. Close it before closing the producer.
//
// After a send the Sender updates the row as QMQ's client does: deleted
// when the broker stored the message; status -100 and error+1 when a
// broker refused it (BLOCK), left for a human; error+1 and a fresh
// update_time when the send failed otherwise (broker unreachable,
// timeout, send queue full), status staying 0, so that QMQ's watchdog
// resends it if this process does not: the Sender retries such rows
// itself (WithRetryDelay, WithRetryLimit) until it is closed.
type Sender struct {
	db  *sql.DB
	p   asyncSender
	st  statements
	cfg config
	log hclog.Logger

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	wake   chan struct{} // 1-buffered: results arrived or Close called
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	inflight int      // sends handed to the producer, not yet reported
	results  []result // reported, not yet applied to the table
}

// New returns a Sender writing to db's message table and sending through
// p. It does not touch the database: create the table first
// (schema/init_client.sql or schema/init_client_postgres.sql).
func New(db *sql.DB, p *client.Producer, opts ...Option) (*Sender, error) {
	if p == nil {
		return nil, errors.New("qmq tx: New needs a producer (client.NewProducer)")
	}
	return newSender(db, p, opts...)
}

func newSender(db *sql.DB, p asyncSender, opts ...Option) (*Sender, error) {
	if db == nil {
		return nil, errors.New("qmq tx: New needs the *sql.DB of the business database")
	}
	cfg := config{retryDelay: DefaultRetryDelay, maxRetryDelay: DefaultMaxRetryDelay,
		maxRetained: DefaultMaxRetained, retryLimit: DefaultRetryLimit, statementTimeout: DefaultStatementTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = hclog.NewNullLogger()
	}
	if cfg.maxRetryDelay < cfg.retryDelay {
		cfg.maxRetryDelay = cfg.retryDelay
	}
	st, err := newStatements(cfg.dialect, cfg.table)
	if err != nil {
		return nil, err
	}
	s := &Sender{db: db, p: p, st: st, cfg: cfg, log: cfg.log.Named("tx"), wake: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Table is the message table's name.
func (s *Sender) Table() string { return s.st.table }

// insert writes one message row in t and returns its id.
func (s *Sender) insert(ctx context.Context, t *sql.Tx, m *client.Message) (int64, error) {
	content := Encode(m)
	if s.st.dialect == PostgreSQL {
		var id int64
		if err := t.QueryRowContext(ctx, s.st.insert, content).Scan(&id); err != nil {
			return 0, err
		}
		return id, nil
	}
	res, err := t.ExecContext(ctx, s.st.insert, content)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// committed sends the rows of a committed transaction.
func (s *Sender) committed(rows []row) {
	for _, r := range rows {
		s.dispatch(r)
	}
}

// dispatch hands one row's message to the producer; its outcome comes
// back through report. A closed Sender sends nothing: the rows stay for
// the watchdog.
func (s *Sender) dispatch(r row) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.log.Warn("sender closed: message left in the table for the watchdog", "message", r.m.String(), "row", r.id, "table", s.st.table)
		return
	}
	s.inflight++
	s.mu.Unlock()
	if err := s.p.SendAsync(r.m, func(_ *client.Message, err error) { s.report(r, err) }); err != nil {
		s.report(r, err) // queue full or producer closed: the row waits
	}
}

// report records a send's outcome for the worker; it is called from the
// producer's goroutines and must not block.
func (s *Sender) report(r row, err error) {
	s.mu.Lock()
	s.inflight--
	s.results = append(s.results, result{row: r, err: err})
	s.mu.Unlock()
	s.signal()
}

func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops sending: messages of transactions committed after Close,
// and failed messages waiting for a retry, stay in the table for the
// watchdog. It waits until the sends under way have finished and their
// rows are updated, or ctx ends (then it returns ctx's error; rows of
// messages sent meanwhile may remain, and the watchdog sends them again).
// It does not close the producer.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		s.signal()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("qmq tx: close: gave up waiting for sends under way: %w", ctx.Err())
	}
}
