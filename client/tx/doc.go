// Package tx sends QMQ messages as part of a database transaction
// ("transactional messages", QMQ's MessageProducerProvider with a
// TransactionProvider): a message is sent if and only if the business
// transaction that produced it commits.
//
// Send INSERTs the message into a table of the business database, in the
// caller's transaction, so the message and the business change commit or
// roll back together. After the commit, the Sender sends the rows'
// messages through a client.Producer, asynchronously, and deletes the
// rows of the messages the broker stored. A row whose send failed stays
// (its error count raised) and is sent again by this Sender after a delay,
// or by QMQ's watchdog, which resends rows with status 0 that have not
// been touched for a minute; a row a broker refused (BLOCK) is marked
// status -100 and waits for a human. Delivery is therefore at least once:
// a crash between send and DELETE sends the message again.
//
//	sender, err := tx.New(db, producer)                       // once
//	t, err := sender.Begin(ctx, nil)
//	_, err = t.ExecContext(ctx, "UPDATE orders SET state='paid' WHERE id=?", id)
//	err = t.Send(ctx, producer.NewMessage("order.paid").SetProperty("order", id))
//	err = t.Commit()                                          // commits, then sends
//
// or sender.Run(ctx, nil, func(ctx context.Context, t *tx.Tx) error {...}).
// Commit must be Tx's own: database/sql has no commit hook, and the
// Sender learns of the commit only through it.
//
// The table is QMQ's: schema/init_client.sql (MySQL/MariaDB, database
// qmq_produce) or schema/init_client_postgres.sql (PostgreSQL, schema
// qmq_produce), and the content column holds the message in the JSON form
// QMQ's Java client writes (see Encode), so Go and Java applications,
// and QMQ's watchdog, share tables. Decode reads that form back, for a
// watchdog to re-send rows.
//
// Only database/sql is used. MySQL/MariaDB work through
// github.com/go-sql-driver/mysql, PostgreSQL through
// github.com/jackc/pgx/v5/stdlib (WithDialect(PostgreSQL)); the
// application opens the *sql.DB with the driver it imports.
package tx
