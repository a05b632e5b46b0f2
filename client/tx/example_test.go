package tx_test

import (
	"context"
	"database/sql"
	"log"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
)

// The README's example (section "Transactional messages"): compiled, not
// run (it needs a metaserver and a database).
func Example() {
	ctx := context.Background()
	db, err := sql.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/orders")
	if err != nil {
		log.Fatal(err)
	}
	producer, err := client.NewProducer(ctx, "http://127.0.0.1:8080/meta/address", client.WithAppCode("orders"))
	if err != nil {
		log.Fatal(err)
	}
	sender, err := tx.New(db, producer) // tx.WithDialect(tx.PostgreSQL) for PostgreSQL
	if err != nil {
		log.Fatal(err)
	}
	defer func() { // the Sender first: it sends through the producer
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sender.Close(cctx)
		_ = producer.Close(cctx)
	}()

	orderID := "42"
	t, err := sender.Begin(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer t.Rollback() // does nothing after Commit
	if _, err := t.ExecContext(ctx, "UPDATE orders SET state = 'paid' WHERE id = ?", orderID); err != nil {
		log.Fatal(err)
	}
	m := producer.NewMessage("order.paid").SetProperty("orderId", orderID).AddTag("vip")
	if err := t.Send(ctx, m); err != nil { // INSERT into qmq_produce.qmq_msg_queue, same transaction
		log.Fatal(err)
	}
	if err := t.Commit(); err != nil { // commits, then sends m in the background
		log.Fatal(err)
	}
}
