package watchdog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The election is QMQ's, on the metaserver's leader_election table: one
// row per namespace, named qmq_watchdog_<namespace>, holding the leader's
// node and when it last renewed (last_seen_active, epoch milliseconds of
// the database's clock, so the watchdogs' own clocks never matter).
//
//   - Every leader.elect.interval.ms (1 s) each watchdog runs one
//     conditional UPDATE: take the row if it is free (node = ''), already
//     ours, or its lease expired (last_seen_active older than
//     leader.lease.ms, 5 s). The leader's UPDATE is its renewal.
//   - A leader counts its lease from the moment it sent its last
//     successful renewal, by its own monotonic clock, and stops sending one
//     renewal interval before that lease could end: the database wrote a
//     time no earlier than that moment, so no other watchdog can have
//     taken over while this one still sends.
//   - A leader that stops cleanly clears node, so another takes over at
//     its next attempt (≤ 1 s). A killed one is replaced once its lease has
//     expired: within leader.lease.ms + leader.elect.interval.ms (6 s).

// election is how the watchdogs of a namespace pick their leader: QMQ's
// leader_election table (tableElection, here) or, when Consul is
// configured, a Consul lock (consulElection, election_consul.go). One
// goroutine (Server.elect) owns it.
type election interface {
	// describe names the election for logs and errors: what it is and
	// where, never a password.
	describe() string
	// every is how often try runs: the leader's renewal interval.
	every() time.Duration
	// try takes or renews the lead. held reports whether this watchdog
	// leads now, until the moment by which it must have stopped sending
	// unless a later try renews it: before that moment no other watchdog
	// can take the lead. An error wrapping errLeadLost means the lead is
	// surely gone (stop at once); other errors leave a running lead to its
	// deadline, so that one failed renewal does not hand the lead over.
	try(ctx context.Context) (held bool, until time.Time, err error)
	// holder names the watchdog holding the lead, for /health.
	holder(ctx context.Context) (string, error)
	// release gives the lead up at a clean shutdown, so that another
	// watchdog need not wait for it to expire.
	release(ctx context.Context) error
	// close frees the election's resources (not the lead: a watchdog that
	// stops without release lets it expire, as a killed one would).
	close()
}

// errLeadLost: the election says this watchdog's lead has ended.
var errLeadLost = errors.New("the lead was lost")

// electionName is the leader_election row of a namespace (QMQ's name).
func electionName(namespace string) string { return "qmq_watchdog_" + namespace }

// tableElection is QMQ's election on the leader_election table.
type tableElection struct {
	db       *metaDB
	name     string
	node     string
	lease    time.Duration
	interval time.Duration
}

func (e *tableElection) describe() string {
	return fmt.Sprintf("leader_election row %s in %s", e.name, e.db.where)
}

func (e *tableElection) every() time.Duration { return e.interval }

func (e *tableElection) close() {}

// ensureRow creates the namespace's row if it does not exist yet.
func (e *tableElection) ensureRow(ctx context.Context) error {
	_, err := e.db.db.ExecContext(ctx, "INSERT INTO leader_election (name, node, last_seen_active) VALUES (?, '', 0)"+e.db.ignoreDup, e.name)
	if err != nil {
		return fmt.Errorf("create the leader_election row %s in %s: %w", e.name, e.db.where, err)
	}
	return nil
}

// try takes or renews the lead with one conditional UPDATE. The lease
// counts from when the statement was sent; the leader keeps one renewal
// interval of it as its margin.
func (e *tableElection) try(ctx context.Context) (held bool, until time.Time, err error) {
	sent := time.Now()
	until = sent.Add(e.lease - e.interval)
	res, err := e.db.db.ExecContext(ctx,
		"UPDATE leader_election SET node = ?, last_seen_active = "+e.db.nowMillis+
			" WHERE name = ? AND (node = ? OR node = '' OR last_seen_active < "+e.db.nowMillis+" - ?)",
		e.node, e.name, e.node, e.lease.Milliseconds())
	if err != nil {
		return false, until, fmt.Errorf("leader election (%s in %s): %w", e.name, e.db.where, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, until, fmt.Errorf("leader election (%s in %s): %w", e.name, e.db.where, err)
	}
	if n == 0 {
		// The row may be missing (a new namespace, or deleted by hand).
		if err := e.ensureRow(ctx); err != nil {
			return false, until, err
		}
	}
	return n > 0, until, nil
}

// holder reads who holds the row, for /health.
func (e *tableElection) holder(ctx context.Context) (string, error) {
	var node string
	err := e.db.db.QueryRowContext(ctx, "SELECT node FROM leader_election WHERE name = ?", e.name).Scan(&node)
	return node, err
}

// release gives the lead up at shutdown, so that another watchdog need
// not wait for the lease to expire.
func (e *tableElection) release(ctx context.Context) error {
	_, err := e.db.db.ExecContext(ctx, "UPDATE leader_election SET node = '' WHERE name = ? AND node = ?", e.name, e.node)
	if err != nil {
		return fmt.Errorf("release the lead (%s in %s): %w", e.name, e.db.where, err)
	}
	return nil
}
