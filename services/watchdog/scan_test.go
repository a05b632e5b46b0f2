package watchdog

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// fakeSender answers each message by its id: nil (stored) unless outcome
// names an error.
type fakeSender struct{ outcome map[string]error }

func (f fakeSender) Send(_ context.Context, msgs ...*client.Message) error {
	var be client.BatchError
	for _, m := range msgs {
		err := f.outcome[m.ID()]
		var se *client.SendError
		switch {
		case err == nil:
		case errors.As(err, &se):
			be.Failed = append(be.Failed, se)
		default:
			return err // refused before sending, as the producer's checks do
		}
	}
	if len(be.Failed) > 0 {
		return &be
	}
	return nil
}

// One scan applies each outcome to its row as QMQ does: stored → deleted,
// BLOCK → status -100, other failure → error + 1 (status 0), a message the
// producer refuses → status -2.
func TestScanAppliesSendOutcomes(t *testing.T) {
	for _, mk := range []func(*testing.T) testDB{mariaClient, postgresClient} {
		c := mk(t)
		rows := map[string]int64{}
		for _, id := range []string{"ok", "block", "busy", "refused"} {
			rows[id] = c.insert(t, javaContent(id, "wd.scan", []string{"t"}, nil))
		}
		s := DefaultSettings()
		w := &Server{settings: s, log: testlog.Logger(t, "scan", hclog.Warn), m: newMetrics(), dbs: map[string]*dbHealth{}}
		cdb, err := parseClientDB(store.ClientDB{URL: c.url, User: map[tx.Dialect]string{tx.MySQL: "root", tx.PostgreSQL: "postgres"}[c.dialect]}, s.Table)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := cdb.open()
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		task := &dbTask{w: w, c: cdb, db: pool, st: newStatements(cdb.dialect, cdb.table)}
		p := fakeSender{outcome: map[string]error{
			"block":   &client.SendError{MessageID: "block", Code: client.CodeBlock},
			"busy":    &client.SendError{MessageID: "busy", Code: client.CodeNoAnswer, Err: errors.New("timeout")},
			"refused": errors.New("illegal subject"),
		}}
		st, err := task.scan(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		// "refused" fails the batch before sending: the others are sent one by one.
		if st.resent != 1 || st.blocked != 1 || st.failed != 1 || st.invalid != 1 || st.pending != 4 {
			t.Errorf("%s: stats %+v", c.url, st)
		}
		want := map[string]struct {
			status, errs int
			present      bool
		}{"ok": {0, 0, false}, "block": {-100, 1, true}, "busy": {0, 1, true}, "refused": {-2, 1, true}}
		for id, w := range want {
			status, errs, ok := c.row(t, rows[id])
			if ok != w.present || (ok && (status != w.status || errs != w.errs)) {
				t.Errorf("%s: row %s: status %d error %d present %v; want %+v", c.url, id, status, errs, ok, w)
			}
		}
		// The failed row was touched: it is not due again until checkInterval has passed.
		st, err = task.scan(context.Background(), p)
		if err != nil || st.resent+st.failed+st.blocked+st.invalid != 0 {
			t.Errorf("%s: second scan %+v %v: want nothing due", c.url, st, err)
		}
	}
}
