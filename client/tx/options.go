package tx

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults of the options.
const (
	DefaultRetryDelay       = 2 * time.Second
	DefaultMaxRetryDelay    = 30 * time.Second
	DefaultMaxRetained      = 10000
	DefaultRetryLimit       = 100
	DefaultStatementTimeout = 10 * time.Second
)

type config struct {
	dialect          Dialect
	table            string
	log              hclog.Logger
	retryDelay       time.Duration
	maxRetryDelay    time.Duration
	maxRetained      int
	retryLimit       int
	statementTimeout time.Duration
}

// Option configures New.
type Option func(*config)

// WithDialect sets the database's dialect (default MySQL).
func WithDialect(d Dialect) Option { return func(c *config) { c.dialect = d } }

// WithTable sets the message table, "table" or "db.table" on MySQL,
// "table" or "schema.table" on PostgreSQL (default DefaultTable,
// qmq_produce.qmq_msg_queue). Use it where the business tables and
// qmq_produce cannot share a transaction: create the table in the
// business database and name it here (QMQ's
// DefaultSqlStatementProvider(tableName)). QMQ's watchdog only scans
// qmq_produce.qmq_msg_queue.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithLogger sets the logger (default: none).
func WithLogger(l hclog.Logger) Option { return func(c *config) { c.log = l } }

// WithRetryDelay sets how this process re-sends a committed message whose
// send failed (broker unreachable, timeouts; not a broker's BLOCK): after
// first, then after doubling delays up to max, for as long as the Sender
// is open. first = 0 turns these retries off and leaves every failed row
// to the watchdog. Defaults: DefaultRetryDelay, DefaultMaxRetryDelay.
func WithRetryDelay(first, max time.Duration) Option {
	return func(c *config) { c.retryDelay, c.maxRetryDelay = first, max }
}

// WithRetryLimit caps how often the Sender sends one message again
// (default DefaultRetryLimit: about 50 minutes at the default delays);
// then its row is left to the watchdog. Each failure adds one to the
// row's error column, and QMQ's watchdog gives up on rows with 1000
// errors, so the limit keeps the watchdog's share of retries intact.
func WithRetryLimit(n int) Option { return func(c *config) { c.retryLimit = n } }

// WithMaxRetained caps how many failed messages the Sender keeps in memory
// to re-send (default DefaultMaxRetained); beyond it, failed rows are left
// to the watchdog only.
func WithMaxRetained(n int) Option { return func(c *config) { c.maxRetained = n } }

// WithStatementTimeout bounds each DELETE/UPDATE the Sender runs after a
// send (default DefaultStatementTimeout).
func WithStatementTimeout(d time.Duration) Option {
	return func(c *config) { c.statementTimeout = d }
}
