package watchdog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
)

// dueRow is a row of qmq_msg_queue to resend.
type dueRow struct {
	id      int64
	content []byte
	errors  int64
	msg     *client.Message
}

// roundStats are what one scan of one database did.
type roundStats struct {
	pending  int64
	resent   int
	failed   int
	invalid  int
	blocked  int
	timedOut bool
}

// sender is what a scan sends with: the watchdog's producer.
type sender interface {
	Send(ctx context.Context, msgs ...*client.Message) error
}

// scan resends the due rows of one database, batch after batch, until none
// is left or ctx (the time box, sendMessageTaskExecuteTimeout, or the end
// of the lead) ends. Rows are read in id order after a cursor, so a row
// whose DELETE or UPDATE failed is not read again in the same round.
func (t *dbTask) scan(ctx context.Context, p sender) (roundStats, error) {
	var st roundStats
	if err := t.db.QueryRowContext(ctx, t.st.pending).Scan(&st.pending); err != nil {
		return st, t.dbError("count pending rows", err)
	}
	t.w.m.pending.WithLabelValues(t.c.url).Set(float64(st.pending))
	var cursor int64
	pace := pacer{rate: t.w.settings.RatePerDB}
	for ctx.Err() == nil {
		rows, err := t.due(ctx, cursor)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return st, err
		}
		if len(rows) == 0 {
			return st, nil
		}
		cursor = rows[len(rows)-1].id
		send := t.sortOut(ctx, rows, &st)
		if len(send) == 0 {
			continue
		}
		if err := pace.wait(ctx, len(send)); err != nil {
			break
		}
		if err := t.resend(ctx, p, send, &st); err != nil {
			return st, err
		}
	}
	st.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	return st, nil
}

// due reads the next batch of rows after cursor.
func (t *dbTask) due(ctx context.Context, cursor int64) ([]dueRow, error) {
	s := t.w.settings
	rs, err := t.db.QueryContext(ctx, t.st.due, cursor, s.CheckInterval.Milliseconds(), s.BatchSize)
	if err != nil {
		return nil, t.dbError("read due rows", err)
	}
	defer rs.Close()
	var out []dueRow
	for rs.Next() {
		var r dueRow
		if err := rs.Scan(&r.id, &r.content, &r.errors); err != nil {
			return nil, t.dbError("read due rows", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, t.dbError("read due rows", err)
	}
	return out, nil
}

// sortOut decodes the rows and marks those that cannot be sent (QMQ's
// VALID_ERROR, status -2), each reported in the log once: it is never
// read again. It returns the rows to send.
func (t *dbTask) sortOut(ctx context.Context, rows []dueRow, st *roundStats) []dueRow {
	var send []dueRow
	for _, r := range rows {
		var why string
		switch {
		case r.errors >= int64(t.w.settings.MaxErrors):
			why = fmt.Sprintf("its send failed %d times (watchdog.max.errors=%d)", r.errors, t.w.settings.MaxErrors)
		case len(strings.TrimSpace(string(r.content))) == 0:
			why = "its content is empty"
		default:
			m, err := tx.Decode(r.content)
			switch {
			case err != nil:
				why = err.Error()
			case strings.Contains(m.Subject(), "${"):
				why = fmt.Sprintf("its subject %q holds an unresolved placeholder", m.Subject())
			default:
				r.msg = m
				send = append(send, r)
				continue
			}
		}
		t.markInvalid(ctx, r.id, why, st)
	}
	return send
}

func (t *dbTask) markInvalid(ctx context.Context, id int64, why string, st *roundStats) {
	st.invalid++
	t.w.m.marked.WithLabelValues(t.c.url, "-2").Inc()
	t.w.log.Error("row cannot be sent: marked status -2 for a human to look at (it is kept, not deleted; set status back to 0 to have it resent)",
		"db", t.c.url, "table", t.c.table, "row", id, "reason", why)
	t.exec(ctx, t.st.mark, statusInvalid, id)
}

// resend sends a batch and applies the outcome: DELETE the sent rows,
// status -100 for BLOCK, error+1 for other failures.
func (t *dbTask) resend(ctx context.Context, p sender, rows []dueRow, st *roundStats) error {
	msgs := make([]*client.Message, len(rows))
	for i, r := range rows {
		msgs[i] = r.msg
	}
	failed := map[string]error{} // by message id
	if t.w.tracer.On() {
		spans := startResend(ctx, t.w.tracer, t.c.url, rows)
		defer func() { endResend(spans, failed) }()
	}
	err := p.Send(ctx, msgs...)
	var be *client.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		for _, f := range be.Failed {
			failed[f.MessageID] = f
		}
	case ctx.Err() != nil:
		return nil // the round ends; rows untouched, next round
	default:
		// The batch was refused before sending (a message the producer
		// will not send, or a closed producer): one by one, to find which.
		for _, r := range rows {
			if err := p.Send(ctx, r.msg); err != nil {
				failed[r.msg.ID()] = err
			}
		}
	}
	var sent []int64
	for _, r := range rows {
		err, bad := failed[r.msg.ID()]
		var se *client.SendError
		switch {
		case !bad:
			sent = append(sent, r.id)
		case errors.As(err, &se) && se.Code == client.CodeBlock:
			st.blocked++
			t.w.m.marked.WithLabelValues(t.c.url, "-100").Inc()
			t.w.log.Error("a broker refused the message (BLOCK): row marked status -100 for a human to look at; is the application allowed to send to the subject?",
				"db", t.c.url, "row", r.id, "message", r.msg.ID(), "subject", r.msg.Subject(), "error", err)
			t.exec(ctx, t.st.mark, tx.StatusBlocked, r.id)
		case se == nil && !errors.Is(err, client.ErrClosed) && ctx.Err() == nil:
			// Not a send failure: the producer refuses the message itself.
			t.markInvalid(ctx, r.id, err.Error(), st)
		default:
			st.failed++
			t.w.m.failed.WithLabelValues(t.c.url).Inc()
			t.exec(ctx, t.st.failed, r.id)
			t.lastSendErr = err
		}
	}
	if len(sent) > 0 {
		args := make([]any, len(sent))
		for i, id := range sent {
			args[i] = id
		}
		// The messages are stored: the DELETE must not be cut short by the
		// end of the time box, or they would be sent once more.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err := t.db.ExecContext(dctx, t.st.del(len(sent)), args...)
		cancel()
		st.resent += len(sent)
		t.w.m.resent.WithLabelValues(t.c.url).Add(float64(len(sent)))
		if err != nil {
			return t.dbError(fmt.Sprintf("delete %d sent rows (they will be sent once more)", len(sent)), err)
		}
	}
	return nil
}

// exec runs one UPDATE of a row; a failure only costs the row's marking,
// which the next round redoes, so it is logged, not returned.
func (t *dbTask) exec(ctx context.Context, stmt string, args ...any) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := t.db.ExecContext(ectx, stmt, args...); err != nil {
		t.w.log.Warn("update of a row failed; the next round tries again", "db", t.c.url, "row", args[len(args)-1], "error", redact(err, t.c.password))
	}
}

// dbError is an error of the client database, naming it by url, never
// by its password.
func (t *dbTask) dbError(what string, err error) error {
	return fmt.Errorf("client database %s (user %s): %s: %w", t.c.url, t.c.user, what, redact(err, t.c.password))
}

// pacer spreads sends to rate rows per second.
type pacer struct {
	rate float64
	next time.Time
}

func (p *pacer) wait(ctx context.Context, n int) error {
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
	return nil
}

// dbTask is one client database the leader serves: its pool, statements
// and state for /health.
type dbTask struct {
	w           *Server
	c           clientDB
	db          *sql.DB
	st          statements
	lastSendErr error
}
