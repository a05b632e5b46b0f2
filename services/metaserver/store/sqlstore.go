package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// sqlStore implements Store with the same statements on MySQL and SQLite;
// what differs is in d.
type sqlStore struct {
	db    *sql.DB
	d     dialect
	where string // "mysql tcp(host:port)/db" or "sqlite /path", for Ping's message
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.where, err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.where, err)
	}
	return nil
}

// t converts a time to be written to a statement argument (UTC, whole
// seconds; the zero time means now).
func (s *sqlStore) t(t time.Time) any { return s.d.timeArg(dbTime(t)) }

// cmp converts a time to be compared with a time column to a statement
// argument (UTC, whole seconds, like the stored values; zero stays zero).
func (s *sqlStore) cmp(t time.Time) any { return s.d.timeArg(t.UTC().Truncate(time.Second)) }

// exec runs a statement and returns the rows it affected (matched, on MySQL:
// OpenMySQL sets clientFoundRows, as QMQ's JDBC driver reports).
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, s.d.dup(err)
	}
	return res.RowsAffected()
}

// ---------------------------------------------------------------- broker

func checkBroker(b Broker) (ip int64, err error) {
	if err := validate(
		varchar("broker.group_name", b.Group, 30),
		varchar("broker.hostname", b.Hostname, 50),
		integer("broker.role", b.Role),
		integer("broker.serve_port", b.ServePort),
		integer("broker.sync_port", b.SyncPort),
	); err != nil {
		return 0, err
	}
	return ipToInt(b.IP)
}

func (s *sqlStore) InsertBroker(ctx context.Context, b Broker) error {
	ip, err := checkBroker(b)
	if err == nil {
		now := s.t(time.Time{})
		_, err = s.exec(ctx, `INSERT INTO broker (group_name, role, hostname, ip, serve_port, sync_port, create_time, update_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, b.Group, b.Role, b.Hostname, ip, b.ServePort, b.SyncPort, now, now)
	}
	if err != nil {
		return fmt.Errorf("insert broker %s/%d: %w", b.Group, b.Role, err)
	}
	return nil
}

const brokerCols = "group_name, role, hostname, ip, serve_port, sync_port"

func scanBroker(sc interface{ Scan(...any) error }, extra ...any) (Broker, error) {
	var b Broker
	var ip int64
	if err := sc.Scan(append([]any{&b.Group, &b.Role, &b.Hostname, &ip, &b.ServePort, &b.SyncPort}, extra...)...); err != nil {
		return Broker{}, err
	}
	var err error
	b.IP, err = intToIP(ip)
	return b, err
}

func (s *sqlStore) ReplaceBroker(ctx context.Context, b Broker) (Broker, error) {
	old, err := s.replaceBroker(ctx, b)
	if err != nil {
		return Broker{}, fmt.Errorf("replace broker %s/%d: %w", b.Group, b.Role, err)
	}
	return old, nil
}

func (s *sqlStore) replaceBroker(ctx context.Context, b Broker) (old Broker, err error) {
	ip, err := checkBroker(b)
	if err != nil {
		return Broker{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Broker{}, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var id int64
	row := tx.QueryRowContext(ctx, "SELECT "+brokerCols+", id FROM broker WHERE group_name = ? AND role = ?"+s.d.forUpdate, b.Group, b.Role)
	old, err = scanBroker(row, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return Broker{}, fmt.Errorf("no broker with this group and role: %w", ErrNotFound)
	}
	if err != nil {
		return Broker{}, err
	}
	// The row keeps its id (and group_name as stored), so the broker keeps its
	// place in ListBrokers, as QMQ's UPDATE does.
	if _, err = tx.ExecContext(ctx, "UPDATE broker SET hostname = ?, ip = ?, serve_port = ?, sync_port = ?, update_time = ? WHERE id = ?",
		b.Hostname, ip, b.ServePort, b.SyncPort, s.t(time.Time{}), id); err != nil {
		return Broker{}, s.d.dup(err)
	}
	if err = tx.Commit(); err != nil {
		return Broker{}, err
	}
	return old, nil
}

func (s *sqlStore) ListBrokers(ctx context.Context) ([]Broker, error) {
	out, err := queryAll(ctx, s.db, "SELECT "+brokerCols+" FROM broker ORDER BY id", nil, func(r *sql.Rows) (Broker, error) {
		return scanBroker(r)
	})
	if err != nil {
		return nil, fmt.Errorf("list brokers: %w", err)
	}
	return out, nil
}

// ---------------------------------------------------------------- broker_group

func (s *sqlStore) ListBrokerGroups(ctx context.Context) ([]BrokerGroup, error) {
	out, err := queryAll(ctx, s.db, "SELECT group_name, kind, master_address, broker_state, tag, update_time FROM broker_group ORDER BY id", nil,
		func(r *sql.Rows) (g BrokerGroup, err error) {
			err = r.Scan(&g.Name, &g.Kind, &g.MasterAddress, &g.State, &g.Tag, timeScanner{&g.UpdateTime})
			return g, err
		})
	if err != nil {
		return nil, fmt.Errorf("list broker groups: %w", err)
	}
	return out, nil
}

func (s *sqlStore) UpsertBrokerGroup(ctx context.Context, g BrokerGroup) error {
	err := validate(
		varchar("broker_group.group_name", g.Name, 30),
		integer("broker_group.kind", g.Kind),
		varchar("broker_group.master_address", g.MasterAddress, 25),
		tinyint("broker_group.broker_state", g.State),
		varchar("broker_group.tag", g.Tag, 30),
		timestamp("broker_group.update_time", g.UpdateTime),
	)
	if err == nil {
		ut := s.t(g.UpdateTime)
		_, err = s.exec(ctx, `INSERT INTO broker_group (group_name, kind, master_address, broker_state, tag, create_time, update_time)
VALUES (?, ?, ?, ?, ?, ?, ?) `+s.d.upsert([]string{"group_name"}, []string{"kind", "master_address", "broker_state", "update_time"}),
			g.Name, g.Kind, g.MasterAddress, g.State, g.Tag, s.t(time.Time{}), ut)
	}
	if err != nil {
		return fmt.Errorf("upsert broker group %s: %w", g.Name, err)
	}
	return nil
}

func (s *sqlStore) UpdateBrokerGroupState(ctx context.Context, group string, state int, now time.Time) (int64, error) {
	err := validate(tinyint("broker_group.broker_state", state), timestamp("broker_group.update_time", now))
	var n int64
	if err == nil {
		n, err = s.exec(ctx, "UPDATE broker_group SET broker_state = ?, update_time = ? WHERE group_name = ?", state, s.t(now), group)
	}
	if err != nil {
		return 0, fmt.Errorf("update state of broker group %s to %d: %w", group, state, err)
	}
	return n, nil
}

func (s *sqlStore) MarkBrokerGroupNRWIfStale(ctx context.Context, group string, staleBefore, now time.Time) (int64, error) {
	err := validate(timestamp("broker_group.update_time", now))
	var n int64
	if err == nil {
		n, err = s.exec(ctx, "UPDATE broker_group SET broker_state = ?, update_time = ? WHERE group_name = ? AND update_time < ?",
			StateNRW, s.t(now), group, s.cmp(staleBefore))
	}
	if err != nil {
		return 0, fmt.Errorf("mark broker group %s NRW: %w", group, err)
	}
	return n, nil
}

// ---------------------------------------------------------------- subject_info

func scanSubjectInfo(sc interface{ Scan(...any) error }) (si SubjectInfo, err error) {
	err = sc.Scan(&si.Name, &si.Tag, timeScanner{&si.UpdateTime})
	return si, err
}

func (s *sqlStore) ListSubjectInfos(ctx context.Context) ([]SubjectInfo, error) {
	out, err := queryAll(ctx, s.db, "SELECT name, tag, update_time FROM subject_info ORDER BY id", nil,
		func(r *sql.Rows) (SubjectInfo, error) { return scanSubjectInfo(r) })
	if err != nil {
		return nil, fmt.Errorf("list subject infos: %w", err)
	}
	return out, nil
}

func (s *sqlStore) GetSubjectInfo(ctx context.Context, subject string) (SubjectInfo, bool, error) {
	si, err := scanSubjectInfo(s.db.QueryRowContext(ctx, "SELECT name, tag, update_time FROM subject_info WHERE name = ?", subject))
	if errors.Is(err, sql.ErrNoRows) {
		return SubjectInfo{}, false, nil
	}
	if err != nil {
		return SubjectInfo{}, false, fmt.Errorf("get subject info %s: %w", subject, err)
	}
	return si, true, nil
}

func (s *sqlStore) InsertSubjectInfo(ctx context.Context, si SubjectInfo) error {
	err := validate(varchar("subject_info.name", si.Name, 100), varchar("subject_info.tag", si.Tag, 30),
		timestamp("subject_info.update_time", si.UpdateTime))
	if err == nil {
		_, err = s.exec(ctx, "INSERT INTO subject_info (name, tag, create_time, update_time) VALUES (?, ?, ?, ?)",
			si.Name, si.Tag, s.t(time.Time{}), s.t(si.UpdateTime))
	}
	if err != nil {
		return fmt.Errorf("insert subject info %s: %w", si.Name, err)
	}
	return nil
}

// ---------------------------------------------------------------- subject_route

func scanSubjectRoute(sc interface{ Scan(...any) error }) (SubjectRoute, error) {
	var r SubjectRoute
	var js string
	if err := sc.Scan(&r.Subject, &js, &r.Version, timeScanner{&r.UpdateTime}); err != nil {
		return SubjectRoute{}, err
	}
	var err error
	r.BrokerGroups, err = decodeGroups(js)
	if err != nil {
		return SubjectRoute{}, fmt.Errorf("subject %s: %w", r.Subject, err)
	}
	return r, nil
}

func (s *sqlStore) ListSubjectRoutes(ctx context.Context) ([]SubjectRoute, error) {
	out, err := queryAll(ctx, s.db, "SELECT subject_info, broker_group_json, version, update_time FROM subject_route ORDER BY id", nil,
		func(r *sql.Rows) (SubjectRoute, error) { return scanSubjectRoute(r) })
	if err != nil {
		return nil, fmt.Errorf("list subject routes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) GetSubjectRoute(ctx context.Context, subject string) (SubjectRoute, bool, error) {
	r, err := scanSubjectRoute(s.db.QueryRowContext(ctx,
		"SELECT subject_info, broker_group_json, version, update_time FROM subject_route WHERE subject_info = ?", subject))
	if errors.Is(err, sql.ErrNoRows) {
		return SubjectRoute{}, false, nil
	}
	if err != nil {
		return SubjectRoute{}, false, fmt.Errorf("get subject route %s: %w", subject, err)
	}
	return r, true, nil
}

func routeJSON(subject string, groups []string) (string, error) {
	js, err := encodeGroups(groups)
	if err != nil {
		return "", err
	}
	return js, validate(varchar("subject_route.subject_info", subject, 100), varchar("subject_route.broker_group_json", js, 300))
}

func (s *sqlStore) InsertSubjectRoute(ctx context.Context, subject string, groups []string) error {
	js, err := routeJSON(subject, groups)
	if err == nil {
		now := s.t(time.Time{})
		_, err = s.exec(ctx, "INSERT INTO subject_route (subject_info, broker_group_json, version, create_time, update_time) VALUES (?, ?, 1, ?, ?)",
			subject, js, now, now)
	}
	if err != nil {
		return fmt.Errorf("insert subject route %s: %w", subject, err)
	}
	return nil
}

func (s *sqlStore) UpdateSubjectRoute(ctx context.Context, subject string, oldVersion int, groups []string) (int64, error) {
	js, err := routeJSON(subject, groups)
	var n int64
	if err == nil {
		n, err = s.exec(ctx, "UPDATE subject_route SET broker_group_json = ?, version = version + 1, update_time = ? WHERE subject_info = ? AND version = ?",
			js, s.t(time.Time{}), subject, oldVersion)
	}
	if err != nil {
		return 0, fmt.Errorf("update subject route %s (version %d): %w", subject, oldVersion, err)
	}
	return n, nil
}

// ---------------------------------------------------------------- client_meta_info

func (s *sqlStore) InsertClientMeta(ctx context.Context, c ClientMeta) error {
	err := validate(
		varchar("client_meta_info.subject_info", c.Subject, 100),
		tinyint("client_meta_info.client_type", c.ClientType),
		varchar("client_meta_info.consumer_group", c.ConsumerGroup, 100),
		varchar("client_meta_info.client_id", c.ClientID, 100),
		varchar("client_meta_info.app_code", c.AppCode, 100),
		varchar("client_meta_info.room", c.Room, 20),
		timestamp("client_meta_info.update_time", c.UpdateTime),
	)
	if err == nil {
		_, err = s.exec(ctx, `INSERT INTO client_meta_info (subject_info, client_type, consumer_group, client_id, app_code, room, create_time, update_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) `+s.d.ignoreDup,
			c.Subject, c.ClientType, c.ConsumerGroup, c.ClientID, c.AppCode, c.Room, s.t(time.Time{}), s.t(c.UpdateTime))
	}
	if err != nil {
		return fmt.Errorf("insert client meta %s/%d/%s/%s: %w", c.Subject, c.ClientType, c.ConsumerGroup, c.ClientID, err)
	}
	return nil
}

func (s *sqlStore) ListClientMeta(ctx context.Context, subject string) ([]ClientMeta, error) {
	out, err := queryAll(ctx, s.db, `SELECT subject_info, client_type, consumer_group, client_id, app_code, room, update_time
FROM client_meta_info WHERE subject_info = ? ORDER BY id`, []any{subject},
		func(r *sql.Rows) (c ClientMeta, err error) {
			err = r.Scan(&c.Subject, &c.ClientType, &c.ConsumerGroup, &c.ClientID, &c.AppCode, &c.Room, timeScanner{&c.UpdateTime})
			return c, err
		})
	if err != nil {
		return nil, fmt.Errorf("list client meta of %s: %w", subject, err)
	}
	return out, nil
}

// ---------------------------------------------------------------- client_offline_state

func (s *sqlStore) ListOfflineStates(ctx context.Context) ([]OfflineState, error) {
	out, err := queryAll(ctx, s.db, "SELECT client_id, subject_info, consumer_group, state FROM client_offline_state ORDER BY id", nil,
		func(r *sql.Rows) (o OfflineState, err error) {
			err = r.Scan(&o.ClientID, &o.Subject, &o.ConsumerGroup, &o.State)
			return o, err
		})
	if err != nil {
		return nil, fmt.Errorf("list client offline states: %w", err)
	}
	return out, nil
}

func (s *sqlStore) UpsertOfflineState(ctx context.Context, o OfflineState) error {
	err := validate(
		varchar("client_offline_state.client_id", o.ClientID, 100),
		varchar("client_offline_state.subject_info", o.Subject, 100),
		varchar("client_offline_state.consumer_group", o.ConsumerGroup, 100),
		tinyint("client_offline_state.state", o.State),
	)
	if err == nil {
		_, err = s.exec(ctx, "INSERT INTO client_offline_state (client_id, subject_info, consumer_group, state) VALUES (?, ?, ?, ?) "+
			s.d.upsert([]string{"client_id", "subject_info", "consumer_group"}, []string{"state"}),
			o.ClientID, o.Subject, o.ConsumerGroup, o.State)
	}
	if err != nil {
		return fmt.Errorf("upsert client offline state %s/%s/%s: %w", o.ClientID, o.Subject, o.ConsumerGroup, err)
	}
	return nil
}

// ---------------------------------------------------------------- readonly_broker_group_setting

func (s *sqlStore) ListReadonlySettings(ctx context.Context) ([]ReadonlySetting, error) {
	out, err := queryAll(ctx, s.db, "SELECT subject, broker_group FROM readonly_broker_group_setting ORDER BY id", nil,
		func(r *sql.Rows) (rs ReadonlySetting, err error) {
			err = r.Scan(&rs.Subject, &rs.BrokerGroup)
			return rs, err
		})
	if err != nil {
		return nil, fmt.Errorf("list readonly broker group settings: %w", err)
	}
	return out, nil
}

func (s *sqlStore) InsertReadonlySetting(ctx context.Context, rs ReadonlySetting) error {
	err := validate(
		varchar("readonly_broker_group_setting.subject", rs.Subject, 100),
		varchar("readonly_broker_group_setting.broker_group", rs.BrokerGroup, 20),
	)
	if err == nil {
		_, err = s.exec(ctx, "INSERT INTO readonly_broker_group_setting (subject, broker_group, create_time) VALUES (?, ?, ?) "+s.d.ignoreDup,
			rs.Subject, rs.BrokerGroup, s.t(time.Time{}))
	}
	if err != nil {
		return fmt.Errorf("insert readonly setting %s/%s: %w", rs.Subject, rs.BrokerGroup, err)
	}
	return nil
}

func (s *sqlStore) DeleteReadonlySetting(ctx context.Context, rs ReadonlySetting) (int64, error) {
	n, err := s.exec(ctx, "DELETE FROM readonly_broker_group_setting WHERE subject = ? AND broker_group = ?", rs.Subject, rs.BrokerGroup)
	if err != nil {
		return 0, fmt.Errorf("delete readonly setting %s/%s: %w", rs.Subject, rs.BrokerGroup, err)
	}
	return n, nil
}

// ---------------------------------------------------------------- datasource_config

func (s *sqlStore) InsertClientDB(ctx context.Context, d ClientDB) error {
	err := validate(
		varchar("datasource_config.url", d.URL, 128),
		varchar("datasource_config.user_name", d.User, 100),
		varchar("datasource_config.password", d.Password, 100),
		tinyint("datasource_config.status", d.Status),
		varchar("datasource_config.room", d.Room, 20),
	)
	if err == nil {
		now := s.t(time.Time{})
		_, err = s.exec(ctx, "INSERT INTO datasource_config (url, user_name, password, status, room, create_time, update_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
			d.URL, d.User, d.Password, d.Status, d.Room, now, now)
	}
	if err != nil {
		return fmt.Errorf("insert client db %s: %w", d.URL, err)
	}
	return nil
}

// ListClientDBs lists the client databases of room in insertion order, all
// rooms when room is "". Every status is returned; callers filter.
func (s *sqlStore) ListClientDBs(ctx context.Context, room string) ([]ClientDB, error) {
	q := "SELECT url, user_name, password, status, room FROM datasource_config"
	var args []any
	if room != "" {
		q += " WHERE room = ?"
		args = append(args, room)
	}
	out, err := queryAll(ctx, s.db, q+" ORDER BY id", args, func(r *sql.Rows) (d ClientDB, err error) {
		err = r.Scan(&d.URL, &d.User, &d.Password, &d.Status, &d.Room)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list client dbs of room %q: %w", room, err)
	}
	return out, nil
}

// ---------------------------------------------------------------- helpers

// queryAll runs a query and scans every row with scan. The rows are read to
// the end and closed before it returns, which matters for SQLite's single
// connection. An empty result is a nil slice.
func queryAll[T any](ctx context.Context, db *sql.DB, query string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
