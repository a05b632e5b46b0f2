package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Failover (ours): the atomic master/slave swap of the broker table and the
// group master leases of table broker_epoch. Neither exists in QMQ; the
// table is added by schema/init.sql (CREATE TABLE IF NOT EXISTS), QMQ's tables
// are untouched.

// oursTables are the tables this server adds to QMQ's schema. OpenMySQL does
// not require them: without them only failover is unavailable.
var oursTables = []string{"broker_epoch"}

var (
	// ErrLeaseHeld is wrapped when another broker holds an unexpired lease.
	ErrLeaseHeld = errors.New("the group's master lease is held by another broker")
	// ErrUnsafe is wrapped when a promotion could lose acknowledged messages.
	ErrUnsafe = errors.New("promotion is not safe")
	// ErrWrongRole is wrapped when the caller's row has another role than the operation needs.
	ErrWrongRole = errors.New("wrong role")
)

// Epoch is a row of broker_epoch: one term of a group's master. The
// group's latest epoch is its lease: Holder renews ExpireMillis while it
// is master. MessageOffset and ActionOffset are where the holder's logs
// ended when its term began (the takeover point).
type Epoch struct {
	Group          string
	Epoch          int64
	Holder         string // hostname:servePort of the broker row
	Address        string // ip:port registered for clients
	MessageOffset  int64
	ActionOffset   int64
	WaitSlaveWrote bool
	ExpireMillis   int64 // unix milliseconds, metaserver clock
	UpdateTime     time.Time
}

// Claim asks for a group's lease.
type Claim struct {
	Group          string
	Hostname       string
	ServePort      int
	Address        string
	MessageOffset  int64
	ActionOffset   int64
	WaitSlaveWrote bool
	TTL            time.Duration
	// Promote: the caller is the group's slave and takes an expired lease
	// over, swapping the broker rows' roles in the same transaction.
	Promote bool
	// External: the lease itself is kept elsewhere (a Consul session lock
	// the caller holds); the stored expiry is not checked, only recorded.
	External bool
}

// FailoverStore is implemented by every Store of this package.
type FailoverStore interface {
	// SwapMasterSlave exchanges the roles of the group's master and slave
	// rows (0↔1, or 5↔6 for delay groups) in one transaction, through a
	// temporary role value so that UNIQUE (group_name, role) holds at every
	// statement, and expires the group's lease so that the new master can
	// claim it at once. It returns the rows with their new roles.
	SwapMasterSlave(ctx context.Context, group string) (newMaster, newSlave Broker, err error)
	// ClaimLease takes or renews the group's lease (see Claim) at now; it
	// returns the current epoch. ErrLeaseHeld, ErrUnsafe, ErrWrongRole and
	// ErrNotFound are wrapped with an explanation.
	ClaimLease(ctx context.Context, c Claim, now time.Time) (Epoch, error)
	// ListEpochs lists the group's epochs, oldest first.
	ListEpochs(ctx context.Context, group string) ([]Epoch, error)
}

var _ FailoverStore = (*sqlStore)(nil)

const epochCols = "group_name, epoch, holder, address, message_offset, action_offset, wait_slave_wrote, expire_ms, update_time"

func (s *sqlStore) scanEpoch(sc interface{ Scan(...any) error }) (Epoch, error) {
	var e Epoch
	var wait int
	if err := sc.Scan(&e.Group, &e.Epoch, &e.Holder, &e.Address, &e.MessageOffset, &e.ActionOffset, &wait, &e.ExpireMillis, timeScanner{&e.UpdateTime}); err != nil {
		return Epoch{}, err
	}
	e.WaitSlaveWrote = wait != 0
	return e, nil
}

func (s *sqlStore) SwapMasterSlave(ctx context.Context, group string) (newMaster, newSlave Broker, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Broker{}, Broker{}, fmt.Errorf("swap master and slave of %s: %w", group, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
			err = fmt.Errorf("swap master and slave of %s: %w", group, err)
		}
	}()
	newMaster, newSlave, err = s.swapTx(ctx, tx, group)
	if err != nil {
		return Broker{}, Broker{}, err
	}
	// The lease ends with the swap (a missing broker_epoch table, on a QMQ
	// database, only means no failover).
	_, _ = tx.ExecContext(ctx, "UPDATE broker_epoch SET expire_ms = 0 WHERE group_name = ?", group)
	if err = tx.Commit(); err != nil {
		return Broker{}, Broker{}, err
	}
	return newMaster, newSlave, nil
}

// swapTx swaps the roles of the group's master and slave rows within tx.
func (s *sqlStore) swapTx(ctx context.Context, tx *sql.Tx, group string) (newMaster, newSlave Broker, err error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+brokerCols+", id FROM broker WHERE group_name = ? ORDER BY id"+s.d.forUpdate, group)
	if err != nil {
		return Broker{}, Broker{}, err
	}
	type row struct {
		b  Broker
		id int64
	}
	var all []row
	for rows.Next() {
		var r row
		if r.b, err = scanBroker(rows, &r.id); err != nil {
			rows.Close()
			return Broker{}, Broker{}, err
		}
		all = append(all, r)
	}
	rows.Close()
	if err = rows.Err(); err != nil {
		return Broker{}, Broker{}, err
	}
	var master, slave *row
	for i := range all {
		switch all[i].b.Role {
		case RoleMaster, RoleDelayMaster:
			master = &all[i]
		}
	}
	for i := range all {
		if master != nil && ((master.b.Role == RoleMaster && all[i].b.Role == RoleSlave) || (master.b.Role == RoleDelayMaster && all[i].b.Role == RoleDelaySlave)) {
			slave = &all[i]
		}
	}
	if master == nil || slave == nil {
		return Broker{}, Broker{}, fmt.Errorf("group %s needs a master and a slave row to swap (it has %d rows): %w", group, len(all), ErrNotFound)
	}
	mRole, sRole := master.b.Role, slave.b.Role
	// -1-role is never a real role: UNIQUE (group_name, role) holds after every statement.
	for _, st := range []struct {
		id   int64
		role int
	}{{master.id, -1 - mRole}, {slave.id, mRole}, {master.id, sRole}} {
		if _, err = tx.ExecContext(ctx, "UPDATE broker SET role = ?, update_time = ? WHERE id = ?", st.role, s.t(time.Time{}), st.id); err != nil {
			return Broker{}, Broker{}, s.d.dup(err)
		}
	}
	newMaster, newSlave = slave.b, master.b
	newMaster.Role, newSlave.Role = mRole, sRole
	return newMaster, newSlave, nil
}

func (s *sqlStore) ListEpochs(ctx context.Context, group string) ([]Epoch, error) {
	out, err := queryAll(ctx, s.db, "SELECT "+epochCols+" FROM broker_epoch WHERE group_name = ? ORDER BY epoch", []any{group}, func(r *sql.Rows) (Epoch, error) {
		return s.scanEpoch(r)
	})
	if err != nil {
		return nil, fmt.Errorf("list epochs of %s: %w (on MySQL, apply schema/init.sql again: it adds table broker_epoch)", group, err)
	}
	return out, nil
}

func (s *sqlStore) ClaimLease(ctx context.Context, c Claim, now time.Time) (e Epoch, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Epoch{}, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	holder := fmt.Sprintf("%s:%d", c.Hostname, c.ServePort)
	var role int
	err = tx.QueryRowContext(ctx, "SELECT role FROM broker WHERE group_name = ? AND hostname = ? AND serve_port = ?"+s.d.forUpdate, c.Group, c.Hostname, c.ServePort).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return Epoch{}, fmt.Errorf("%s is not a broker of group %s: %w", holder, c.Group, ErrNotFound)
	}
	if err != nil {
		return Epoch{}, err
	}
	var cur *Epoch
	row := tx.QueryRowContext(ctx, "SELECT "+epochCols+" FROM broker_epoch WHERE group_name = ? ORDER BY epoch DESC LIMIT 1"+s.d.forUpdate, c.Group)
	if got, err := s.scanEpoch(row); err == nil {
		cur = &got
	} else if !errors.Is(err, sql.ErrNoRows) {
		return Epoch{}, fmt.Errorf("read the lease of %s: %w (on MySQL, apply schema/init.sql again: it adds table broker_epoch)", c.Group, err)
	}
	nowMs, expire := now.UnixMilli(), now.Add(c.TTL).UnixMilli()
	held := cur != nil && cur.Holder != holder && cur.ExpireMillis > nowMs && !c.External
	heldErr := func() error {
		return fmt.Errorf("%w: %s (epoch %d) for %d ms more", ErrLeaseHeld, cur.Holder, cur.Epoch, cur.ExpireMillis-nowMs)
	}
	renew := func() (Epoch, error) {
		cur.ExpireMillis, cur.WaitSlaveWrote, cur.Address = expire, c.WaitSlaveWrote, c.Address
		_, err := tx.ExecContext(ctx, "UPDATE broker_epoch SET expire_ms = ?, wait_slave_wrote = ?, address = ?, update_time = ? WHERE group_name = ? AND epoch = ?",
			expire, boolInt(c.WaitSlaveWrote), c.Address, s.t(time.Time{}), c.Group, cur.Epoch)
		return *cur, err
	}
	switch {
	case cur != nil && cur.Holder == holder && (!c.Promote || role == RoleMaster || role == RoleDelayMaster):
		if role != RoleMaster && role != RoleDelayMaster {
			return Epoch{}, fmt.Errorf("%s held epoch %d but the broker table now makes it %d of group %s (the roles were swapped): %w", holder, cur.Epoch, role, c.Group, ErrWrongRole)
		}
		e, err = renew()
	case !c.Promote:
		if role != RoleMaster && role != RoleDelayMaster {
			return Epoch{}, fmt.Errorf("%s is role %d of group %s, not its master: %w", holder, role, c.Group, ErrWrongRole)
		}
		if held {
			return Epoch{}, heldErr()
		}
		e, err = s.newEpoch(ctx, tx, cur, c, holder, expire)
	default: // promotion of the slave
		if role != RoleSlave && role != RoleDelaySlave {
			return Epoch{}, fmt.Errorf("%s is role %d of group %s, not its slave: %w", holder, role, c.Group, ErrWrongRole)
		}
		if cur == nil {
			return Epoch{}, fmt.Errorf("%w: no master of group %s has held a lease, so nothing proves it ran with wait.slave.wrote=true", ErrUnsafe, c.Group)
		}
		if held {
			return Epoch{}, heldErr()
		}
		if !cur.WaitSlaveWrote {
			return Epoch{}, fmt.Errorf("%w: the last master of group %s (%s, epoch %d) ran without wait.slave.wrote, so it may have acknowledged messages this slave lacks; fail over by hand (qmq tools SwapMasterSlave) if losing them is acceptable",
				ErrUnsafe, c.Group, cur.Holder, cur.Epoch)
		}
		if _, _, err = s.swapTx(ctx, tx, c.Group); err != nil {
			return Epoch{}, err
		}
		e, err = s.newEpoch(ctx, tx, cur, c, holder, expire)
	}
	if err != nil {
		return Epoch{}, err
	}
	if err = tx.Commit(); err != nil {
		return Epoch{}, err
	}
	return e, nil
}

func (s *sqlStore) newEpoch(ctx context.Context, tx *sql.Tx, cur *Epoch, c Claim, holder string, expire int64) (Epoch, error) {
	e := Epoch{Group: c.Group, Epoch: 1, Holder: holder, Address: c.Address, MessageOffset: c.MessageOffset, ActionOffset: c.ActionOffset,
		WaitSlaveWrote: c.WaitSlaveWrote, ExpireMillis: expire, UpdateTime: dbTime(time.Time{})}
	if cur != nil {
		e.Epoch = cur.Epoch + 1
	}
	now := s.t(time.Time{})
	_, err := tx.ExecContext(ctx, "INSERT INTO broker_epoch (group_name, epoch, holder, address, message_offset, action_offset, wait_slave_wrote, expire_ms, create_time, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		e.Group, e.Epoch, e.Holder, e.Address, e.MessageOffset, e.ActionOffset, boolInt(e.WaitSlaveWrote), e.ExpireMillis, now, now)
	return e, s.d.dup(err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
