// Package idempotent deduplicates the messages a push consumer handles, as
// QMQ's IdempotentChecker does for the Java client.
//
// QMQ delivers at least once. The same message reaches a consumer group
// again when a producer re-sends after a timeout that hid a success, when a
// consumer dies or loses its ack after handling, when the broker redelivers
// what was pulled but never acknowledged, and, after a failure, as a retry
// copy from %RETRY%<subject>%<group> (same message id, qmq_times+1). A
// Checker remembers which keys were processed, and Wrap turns a handler
// into one that skips them:
//
//	checker, err := idempotent.NewSQL(db, idempotent.SQLConfig{Dialect: idempotent.MySQL, Transactional: true})
//	...
//	err = consumer.Run(ctx, idempotent.Wrap(checker, func(ctx context.Context, m *client.Message) error {
//		_, err := idempotent.Tx(ctx).ExecContext(ctx, "UPDATE account SET ...")
//		return err
//	}))
//
// # Keys
//
// The key of a message is <subject>%<consumer group>%<business key>, as in
// QMQ's AbstractIdempotentChecker, so one table serves several subjects and
// groups, each group processing every message once, and rows written by
// QMQ's Java client count. The business key is the message id unless
// WithKeyFunc says otherwise: an order number, say, to also merge distinct
// messages about the same thing. Retry copies keep the message id.
//
// # What each outcome does
//
// A processed key: the handler is skipped and the message acknowledged. A
// key another handler holds: the handler is skipped and the message
// retried later (WithInFlightRetry), since that handler may still fail. A
// handler error or panic releases the key, then the consumer retries the
// message. A checker error retries the message unhandled.
//
// # Transactional SQL: effectively once
//
// With SQLConfig.Transactional (QMQ's TransactionalJdbcIdempotentChecker)
// the key row is inserted in a transaction that the handler receives
// (Tx(ctx)) and that commits only after the handler returned nil. The
// handler's writes and the key commit together or not at all: a crash, a
// lost connection or a handler failure before the commit rolls back both
// and the redelivery handles the message again from scratch; after the
// commit every redelivery finds the key and is skipped. On MySQL a
// duplicate delivered while the original is being handled waits for that
// transaction's outcome (innodb_lock_wait_timeout at most, then it is
// retried later). If the COMMIT's reply is lost, Commit fails, the message
// is retried and the retry sees the key if the commit did happen.
//
// This is exactly-once in effect for writes to that one database, and only
// for them: anything else the handler does (HTTP calls, messages it sends,
// other databases) happens at least once. The handler must not commit or
// roll back the transaction, nor use another connection for its writes (on
// SQLite, which has one writer, that blocks on the handler's own
// transaction). A transaction stays open, with its connection, for the
// whole handler run: size the pool for the consumer's concurrency.
//
// # Non-transactional SQL: a success is never repeated, an interrupted run may be lost
//
// Without a transaction the checker (QMQ's JdbcIdempotentChecker) inserts
// the key before the handler runs, with update_at set to the end of a lease
// (SQLConfig.Lease) marking it in flight; it sets update_at to the current
// time when the handler succeeds and deletes the row when it fails. The
// handler's side effects and the key are not atomic, which leaves these
// windows:
//
//   - The process dies, or loses the database, after the key was inserted
//     and before the row was deleted or marked: between the start of the
//     handler and the end of its bookkeeping. The row stays. Redeliveries
//     are retried (each retry counts against the message's maximum) until
//     the lease ends, then the key counts as processed: the message is
//     skipped whether or not the handler had completed its side effects.
//     A handler killed halfway is therefore never completed: the message
//     is lost. (QMQ's Java checker has no lease and skips at once.)
//   - The same happens when the handler fails and the DELETE fails too;
//     Wrap logs the key and the statement that releases it by hand.
//   - A handler that fails after part of its side effects is retried and
//     repeats them: it must tolerate its own partial runs, as any QMQ
//     handler must.
//
// So a successful handler run is never repeated for a key still in the
// table, but an interrupted one may never be completed. A handler whose
// side effects are database writes should use the transactional mode.
//
// # Memory
//
// Memory works like the non-transactional mode within one process, without
// the lease (a key's handler is in the same process). Its keys die with the
// process: after a restart, or in another process of the group, duplicates
// are handled again, including the redelivery of a message handled
// successfully just before a crash that came before its ack. It suits
// tests, and consumers for which duplicates are harmless but wasteful.
//
// # Keeping keys
//
// A duplicate arriving after its key was garbage collected is handled again.
// QMQ's retries of one message can span hours (32 retries by default) and a
// consumer group may be stopped for longer: keep keys for days, not
// minutes. SQL.GarbageCollect deletes keys processed before a time in
// batches; QMQ's Java client leaves scheduling it to the application,
// SQL.StartGC does it in a goroutine that ends with its context or its
// stop function. Memory forgets keys its ttl after their commit.
//
// # Tables
//
// SQL uses QMQ's table shape (id, k unique, update_at) and its documented
// default name, deduplicate_tbl, so a table shared with Java consumers
// works as is. MySQLSchema and SQLiteSchema are the DDL; SQL.CreateTable
// runs it. A key longer than column k (100 characters by default, see
// SQLConfig.MaxKeyLength) is refused rather than truncated into another
// key's row.
package idempotent
