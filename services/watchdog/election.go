package watchdog

import (
	"context"
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

// electionName is the leader_election row of a namespace (QMQ's name).
func electionName(namespace string) string { return "qmq_watchdog_" + namespace }

// elector runs the election for one watchdog.
type elector struct {
	db    *metaDB
	name  string
	node  string
	lease time.Duration
}

// ensureRow creates the namespace's row if it does not exist yet.
func (e *elector) ensureRow(ctx context.Context) error {
	_, err := e.db.db.ExecContext(ctx, "INSERT INTO leader_election (name, node, last_seen_active) VALUES (?, '', 0)"+e.db.ignoreDup, e.name)
	if err != nil {
		return fmt.Errorf("create the leader_election row %s in %s: %w", e.name, e.db.where, err)
	}
	return nil
}

// try takes or renews the lead; true if this node holds it now. sent is
// when the statement was sent, the start of the new lease.
func (e *elector) try(ctx context.Context) (held bool, sent time.Time, err error) {
	sent = time.Now()
	res, err := e.db.db.ExecContext(ctx,
		"UPDATE leader_election SET node = ?, last_seen_active = "+e.db.nowMillis+
			" WHERE name = ? AND (node = ? OR node = '' OR last_seen_active < "+e.db.nowMillis+" - ?)",
		e.node, e.name, e.node, e.lease.Milliseconds())
	if err != nil {
		return false, sent, fmt.Errorf("leader election (%s in %s): %w", e.name, e.db.where, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, sent, fmt.Errorf("leader election (%s in %s): %w", e.name, e.db.where, err)
	}
	if n == 0 {
		// The row may be missing (a new namespace, or deleted by hand).
		if err := e.ensureRow(ctx); err != nil {
			return false, sent, err
		}
	}
	return n > 0, sent, nil
}

// holder reads who holds the row, for /health.
func (e *elector) holder(ctx context.Context) (string, error) {
	var node string
	err := e.db.db.QueryRowContext(ctx, "SELECT node FROM leader_election WHERE name = ?", e.name).Scan(&node)
	return node, err
}

// release gives the lead up at shutdown, so that another watchdog need
// not wait for the lease to expire.
func (e *elector) release(ctx context.Context) error {
	_, err := e.db.db.ExecContext(ctx, "UPDATE leader_election SET node = '' WHERE name = ? AND node = ?", e.name, e.node)
	if err != nil {
		return fmt.Errorf("release the lead (%s in %s): %w", e.name, e.db.where, err)
	}
	return nil
}
