package tx

import (
	"context"
	"errors"
	"time"

	"github.com/qmq-go/qmq/client"
)

// deleteBatch is how many sent rows one DELETE removes.
const deleteBatch = 100

// run is the Sender's one goroutine: it applies send outcomes to the
// table and re-sends failed rows when due. It ends when the Sender is
// closed and no send is under way, or when Close gives up waiting.
func (s *Sender) run() {
	defer s.wg.Done()
	defer s.cancel()
	retry := map[int64]*retained{} // failed rows, by id; only this goroutine touches it
	var undeleted []row            // sent rows whose DELETE failed, to try again
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		results := s.results
		s.results = nil
		closing, inflight := s.closed, s.inflight
		s.mu.Unlock()

		undeleted = s.apply(results, undeleted, retry)
		if closing && inflight == 0 {
			if len(undeleted) > 0 {
				undeleted = s.deleteSent(undeleted) // one last try
			}
			if len(undeleted) > 0 || len(retry) > 0 {
				s.log.Warn("closing: rows left in the table for the watchdog", "table", s.st.table,
					"sent_but_not_deleted", len(undeleted), "failed_awaiting_retry", len(retry))
			}
			return
		}
		next := time.Time{}
		if !closing {
			next = s.resendDue(retry)
		}
		if len(undeleted) > 0 && (next.IsZero() || time.Until(next) > time.Second) {
			next = time.Now().Add(time.Second)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.ctx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// apply writes the outcomes of sends to the table and returns the sent
// rows still to be deleted.
func (s *Sender) apply(results []result, undeleted []row, retry map[int64]*retained) []row {
	sent := undeleted
	for _, r := range results {
		var se *client.SendError
		switch {
		case r.err == nil:
			sent = append(sent, r.row)
			delete(retry, r.id)
		case errors.As(r.err, &se) && se.Code == client.CodeBlock:
			delete(retry, r.id)
			s.log.Error("a broker refused the message (BLOCK): row marked status -100 for a human to look at; is the application allowed to send to the subject?",
				"message", r.m.String(), "row", r.id, "table", s.st.table, "error", r.err)
			s.exec(s.st.block, r.id)
		default:
			s.exec(s.st.failed, r.id)
			s.retain(retry, r, s.log.IsDebug())
		}
	}
	if len(sent) == 0 {
		return nil
	}
	return s.deleteSent(sent)
}

// retain schedules a failed row's next send, or leaves it to the watchdog
// when retries are off or too many rows wait.
func (s *Sender) retain(retry map[int64]*retained, r result, debug bool) {
	it := retry[r.id]
	if it == nil {
		if s.cfg.retryDelay <= 0 || len(retry) >= s.cfg.maxRetained || errors.Is(r.err, client.ErrClosed) {
			s.log.Warn("send failed: message left in the table for the watchdog", "message", r.m.String(), "row", r.id, "table", s.st.table, "error", r.err)
			return
		}
		it = &retained{row: r.row}
		retry[r.id] = it
	}
	if it.attempts >= s.cfg.retryLimit || errors.Is(r.err, client.ErrClosed) {
		delete(retry, r.id)
		s.log.Warn("send failed again: message left in the table for the watchdog", "message", r.m.String(), "row", r.id, "table", s.st.table,
			"retries", it.attempts, "error", r.err)
		return
	}
	delay := s.cfg.retryDelay << min(it.attempts, 20)
	if delay > s.cfg.maxRetryDelay || delay <= 0 {
		delay = s.cfg.maxRetryDelay
	}
	it.attempts++
	it.due = time.Now().Add(delay)
	if it.attempts == 1 || debug {
		s.log.Warn("send failed: will retry", "message", r.m.String(), "row", r.id, "attempt", it.attempts, "in", delay, "error", r.err)
	}
}

// resendDue dispatches the rows whose retry is due and returns when the
// next one is (zero if none).
func (s *Sender) resendDue(retry map[int64]*retained) time.Time {
	now := time.Now()
	var next time.Time
	for _, it := range retry {
		if it.due.IsZero() {
			continue // dispatched, outcome pending
		}
		if !it.due.After(now) {
			it.due = time.Time{}
			s.dispatch(it.row)
			continue
		}
		if next.IsZero() || it.due.Before(next) {
			next = it.due
		}
	}
	return next
}

// deleteSent deletes the rows of sent messages and returns those it could
// not delete.
func (s *Sender) deleteSent(sent []row) []row {
	var left []row
	for len(sent) > 0 {
		n := min(len(sent), deleteBatch)
		batch := sent[:n]
		sent = sent[n:]
		args := make([]any, n)
		for i, r := range batch {
			args[i] = r.id
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.statementTimeout)
		_, err := s.db.ExecContext(ctx, s.st.deleteIDs(n), args...)
		cancel()
		if err != nil {
			s.log.Warn("delete of sent messages' rows failed; will try again (if the process ends first, the watchdog sends them once more)",
				"table", s.st.table, "rows", n, "first", batch[0].id, "error", err)
			left = append(left, batch...)
		}
	}
	return left
}

// exec runs one UPDATE of a row after a failed send. A failure only
// costs accuracy of the error count and the watchdog's timing, so it is
// logged, not retried.
func (s *Sender) exec(stmt string, id int64) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.statementTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, stmt, id); err != nil {
		s.log.Warn("update of a failed message's row failed", "table", s.st.table, "row", id, "error", err)
	}
}
