package backup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage/actionlog"
)

// target is what the follower follows: the group's slave's sync address,
// as the metaserver names it for this backup (BROKER_ACQUIRE_META, role 4).
type target struct {
	group, addr string
}

// follower copies the group's logs from the slave's sync port and writes
// what they hold into the store. Its offsets (next to read) only move past
// bytes whose entries the store has accepted, and the checkpoint saves
// them: a restart replays at most what the store may already hold, and
// Puts are idempotent, so nothing is lost or doubled.
type follower struct {
	settings Settings
	store    backup.Store
	log      hclog.Logger
	m        *metrics
	cp       *checkpointFile
	skip     *skipList // skip_backup.properties, reloaded while running

	msgOff atomic.Int64 // the message log's next offset to read (everything before is in the store)
	actOff atomic.Int64 // likewise, the action log's
	// actMu guards pulls and, with them, actOff's meaning: a checkpoint
	// takes both under it, so a saved map always matches its offset.
	actMu   sync.Mutex
	pulls   *pullMap
	started atomic.Bool // the offsets are set (from the checkpoint or the first slave)

	slaveMsgEnd atomic.Int64 // the slave's ends, from heartbeats (-1: unknown)
	slaveActEnd atomic.Int64
	lastMsgTime atomic.Int64 // ms, the timestamp of the newest message written

	mu             sync.Mutex
	cur            target
	changed        chan struct{} // closed when cur changes
	conn           state         // the connection to the slave
	storeErr       state         // the store's writes
	unresolvedAcks atomic.Int64
	pending        atomic.Int64 // pull ranges waiting for acks (for metrics, without actMu)
}

// state is a condition /health reports: since when it holds and why.
type state struct {
	bad    bool
	since  time.Time
	reason string
}

func newFollower(settings Settings, store backup.Store, cp *checkpointFile, skip *skipList, log hclog.Logger, m *metrics) *follower {
	f := &follower{settings: settings, store: store, log: log, m: m, cp: cp, skip: skip, pulls: newPullMap(settings.PullMapTTL),
		changed: make(chan struct{})}
	f.slaveMsgEnd.Store(-1)
	f.slaveActEnd.Store(-1)
	f.conn = state{bad: true, since: time.Now(), reason: "waiting for the metaserver to name the group's slave"}
	return f
}

// restore loads the checkpoint, if any.
func (f *follower) restore(saved savedCheckpoint) {
	f.msgOff.Store(saved.MessageOffset)
	f.actOff.Store(saved.ActionOffset)
	f.pulls.load(saved.Consumers)
	f.pending.Store(int64(f.pulls.pending()))
	f.started.Store(true)
}

// setTarget makes the follower follow t, dropping the connection to the
// previous slave (after a failover the metaserver names another).
func (f *follower) setTarget(t target) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == t {
		return
	}
	if f.cur.addr != "" {
		f.log.Info("the group's slave changed; following the new one", "before", f.cur.addr, "now", t.addr, "group", t.group)
	}
	f.cur = t
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *follower) target() (target, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.changed
}

func (f *follower) setConn(bad bool, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn.bad != bad || f.conn.reason != reason {
		f.conn = state{bad: bad, since: time.Now(), reason: reason}
	}
}

func (f *follower) setStoreErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.storeErr = state{}
		return
	}
	if !f.storeErr.bad {
		f.storeErr = state{bad: true, since: time.Now()}
	}
	f.storeErr.reason = err.Error()
}

// run follows the current target until ctx ends, reconnecting after
// failures and when the target changes.
func (f *follower) run(ctx context.Context) {
	retry := backoff.Backoff{Min: f.settings.RetryInterval, Max: f.settings.RetryInterval}
	var lastErr string
	for ctx.Err() == nil {
		t, changed := f.target()
		if t.addr == "" {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		sctx, cancel := context.WithCancel(ctx)
		go func() { // a new target ends this session
			select {
			case <-changed:
				cancel()
			case <-sctx.Done():
			}
		}()
		err := f.follow(sctx, t)
		cancel()
		if ctx.Err() != nil {
			return
		}
		select {
		case <-changed:
			retry.Reset()
			continue // a new slave: connect at once
		default:
		}
		if err == nil {
			err = errors.New("the connection to the slave ended")
		}
		f.m.syncErrors.Inc()
		f.setConn(true, err.Error())
		if err.Error() != lastErr {
			f.log.Warn(fmt.Sprintf("cannot follow the slave %s; retrying every %s (nothing is lost meanwhile: the backup continues where it stopped)", t.addr, f.settings.RetryInterval),
				"error", err)
			lastErr = err.Error()
		}
		if retry.Wait(ctx) != nil {
			return
		}
	}
}

// follow copies from one slave until ctx ends or a request fails.
func (f *follower) follow(ctx context.Context, t target) error {
	c, hs, err := dialSlave(ctx, f.settings, t)
	if err != nil {
		return err
	}
	defer c.Close()
	info := hs.Replica
	if info.MessageMinOffset < 0 || info.ActionMinOffset < 0 || info.MessageSegmentSize <= 0 || info.ActionSegmentSize <= 0 {
		return fmt.Errorf("slave %s cannot be read yet: its active segment was written under another segment size; the backup starts once it moved on to a new segment", t.addr)
	}
	if !f.started.Load() {
		// A new backup indexes everything the group retains.
		f.msgOff.Store(info.MessageMinOffset)
		f.actOff.Store(info.ActionMinOffset)
		f.started.Store(true)
		f.log.Info("first start: indexing everything the group retains", "message_offset", info.MessageMinOffset, "action_offset", info.ActionMinOffset)
	}
	for _, l := range []struct {
		name     string
		off      *atomic.Int64
		min, max int64
	}{{"message log", &f.msgOff, info.MessageMinOffset, info.MessageMaxOffset}, {"action log", &f.actOff, info.ActionMinOffset, info.ActionMaxOffset}} {
		if at := l.off.Load(); at < l.min {
			// Retention on the group deleted what the backup had not read:
			// nothing can bring it back. Say so loudly and go on.
			f.m.skippedBytes.WithLabelValues(l.name).Add(float64(l.min - at))
			f.log.Error(fmt.Sprintf("the group's %s now starts at %d, but the backup had read only to %d: retention deleted %d bytes before the backup indexed them (was it stopped longer than messagelog.retention.hours?); continuing at %d",
				l.name, l.min, at, l.min-at, l.min))
			l.off.Store(l.min)
		} else if at > l.max {
			return fmt.Errorf("slave %s's %s ends at %d, before the backup's %d: it is still catching up (a former master rejoining after a failover?); waiting for it",
				t.addr, l.name, l.max, at)
		}
	}
	f.setConn(false, "")
	f.log.Info("following the group's slave", "slave", t.addr, "group", t.group, "message_offset", f.msgOff.Load(), "action_offset", f.actOff.Load(),
		"slave_message_end", info.MessageMaxOffset, "slave_action_end", info.ActionMaxOffset)
	f.slaveMsgEnd.Store(info.MessageMaxOffset)
	f.slaveActEnd.Store(info.ActionMaxOffset)

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	fail := func(err error) { stop(err) }
	wg.Go(func() {
		if err := f.copyMessages(ctx, c, t, geometry{info.MessageMinOffset, info.MessageSegmentSize}); err != nil {
			fail(err)
		}
	})
	if f.settings.EnableRecord {
		wg.Go(func() {
			if err := f.copyActions(ctx, c, t, geometry{info.ActionMinOffset, info.ActionSegmentSize}); err != nil {
				fail(err)
			}
		})
	}
	wg.Go(func() { f.heartbeat(ctx, c) })
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// dialSlave connects to t's slave as a reader (syncauth.RoleBackup: it
// never counts as the group's slave) and shakes hands; the caller closes
// the client.
func dialSlave(ctx context.Context, settings Settings, t target) (*remoting.Client, protocol.SyncCheckpointResponse, error) {
	var none protocol.SyncCheckpointResponse
	dctx, cancel := context.WithTimeout(ctx, settings.RequestTimeout)
	defer cancel()
	c, err := remoting.Dial(dctx, t.addr, 0)
	if err != nil {
		return nil, none, fmt.Errorf("slave %s of group %s not reachable: %w", t.addr, t.group, err)
	}
	auth := syncauth.Client{Secret: settings.SyncSecret, Group: t.group, Role: syncauth.RoleBackup}
	err = auth.Authenticate(dctx, func(ctx context.Context, body []byte) (protocol.Frame, error) {
		return c.Call(ctx, protocol.CodeSyncAuth, body)
	})
	switch {
	case errors.Is(err, syncauth.ErrNotSupported):
		// Without SYNC_AUTH the peer would take this connection for its
		// slave's: never risk counting as one.
		c.Close()
		return nil, none, fmt.Errorf("the sync port %s does not know SYNC_AUTH (a qmq-go broker older than the backup); upgrade the group's brokers", t.addr)
	case err != nil:
		c.Close()
		return nil, none, fmt.Errorf("sync auth with slave %s: %w", t.addr, err)
	}
	resp, err := c.Call(dctx, protocol.CodeSyncCheckpointRequest, []byte{protocol.SyncCheckpointV2})
	if err != nil {
		c.Close()
		return nil, none, fmt.Errorf("handshake with slave %s: %w", t.addr, err)
	}
	if resp.Header.Code != protocol.CodeSuccess {
		c.Close()
		return nil, none, fmt.Errorf("slave %s refused the handshake (%s): %s", t.addr, protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	hs, err := protocol.DecodeSyncCheckpointResponse(resp.Body)
	if err != nil || hs.Version != protocol.SyncCheckpointV2 {
		c.Close()
		return nil, none, fmt.Errorf("slave %s answered the handshake with version %d (%v): it is not a qmq-go broker", t.addr, hs.Version, err)
	}
	return c, hs, nil
}

// fetch asks the slave for its log bytes from off.
func (f *follower) fetch(ctx context.Context, c *remoting.Client, t target, typ uint8, off int64) ([]byte, error) {
	req := protocol.SyncLogRequest{Type: typ}
	if typ == protocol.SyncTypeMessage {
		req.MessageLogOffset = off
	} else {
		req.ActionLogOffset = off
	}
	cctx, cancel := context.WithTimeout(ctx, f.settings.RequestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := c.Call(cctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, req))
	f.m.fetchSeconds.WithLabelValues(protocol.SyncTypeName(typ)).Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("read the %s log of slave %s at %d: %w", protocol.SyncTypeName(typ), t.addr, off, err)
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return nil, fmt.Errorf("slave %s refused to send its %s log from %d (%s): %s", t.addr, protocol.SyncTypeName(typ), off,
			protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	r, err := protocol.DecodeSyncLogResponse(resp.Body)
	if err != nil || r.StartOffset != off {
		return nil, fmt.Errorf("slave %s sent a malformed answer for its %s log at %d (bytes from %d): %v", t.addr, protocol.SyncTypeName(typ), off, r.StartOffset, err)
	}
	return r.Data, nil
}

// pipeDepth bounds the answers read ahead of the store (each at most
// sync.batch.size of log, 1 MiB): the next answers are fetched and parsed
// while the store writes, and what queued meanwhile is written as one batch
// (one fsync for several answers when the store is slower than the slave).
const pipeDepth = 8

// maxMergedEntries bounds the entries of one merged write.
const maxMergedEntries = 50_000

// parsed is one answer of the slave, parsed: entries (messages or actions)
// and the offset after them.
type parsed[T any] struct {
	entries []T
	next    int64
	newest  int64 // messages: the newest timestamp (ms)
}

// pipeline fetches and parses one log ahead of its writer: fetchParse reads
// the answer at an offset; commit writes merged entries and moves the
// offset. It returns when ctx ends or either side fails.
func pipeline[T any](ctx context.Context, start int64, fetchParse func(ctx context.Context, off int64) (parsed[T], error),
	commit func(ctx context.Context, batch parsed[T]) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan parsed[T], pipeDepth)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			var b parsed[T]
			select {
			case b = <-queue:
			case <-ctx.Done():
				return
			}
		merge:
			for len(b.entries) < maxMergedEntries {
				select {
				case more := <-queue:
					b.entries = append(b.entries, more.entries...)
					b.next, b.newest = more.next, max(b.newest, more.newest)
				default:
					break merge
				}
			}
			if err := commit(ctx, b); err != nil {
				cancel(err)
				return
			}
		}
	})
	off := start
	var err error
	for ctx.Err() == nil {
		var p parsed[T]
		if p, err = fetchParse(ctx, off); err != nil {
			break
		}
		if p.next == off {
			continue // nothing new (the slave parked the request until now)
		}
		select {
		case queue <- p:
			off = p.next
		case <-ctx.Done():
		}
	}
	if err != nil {
		cancel(err)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func (f *follower) copyMessages(ctx context.Context, c *remoting.Client, t target, g geometry) error {
	return pipeline(ctx, f.msgOff.Load(), func(ctx context.Context, off int64) (parsed[backup.Message], error) {
		data, err := f.fetch(ctx, c, t, protocol.SyncTypeMessage, off)
		if err != nil || len(data) == 0 {
			return parsed[backup.Message]{next: off}, err
		}
		b, next, err := replayMessages(data, off, g, t.group, f.settings.BackupContent)
		if err != nil {
			return parsed[backup.Message]{}, fmt.Errorf("slave %s: %w", t.addr, err)
		}
		if next == off {
			return parsed[backup.Message]{}, fmt.Errorf("slave %s sent %d bytes of its message log at %d that hold no whole record", t.addr, len(data), off)
		}
		if b.bad > 0 {
			f.m.badPayloads.Add(float64(b.bad))
			f.log.Warn("messages whose payload could not be read were not indexed", "count", b.bad, "offset", off)
		}
		return parsed[backup.Message]{entries: b.msgs, next: next, newest: b.newest}, nil
	}, func(ctx context.Context, b parsed[backup.Message]) error {
		// Filtered here, when written, not when read ahead: a reloaded
		// skip_backup.properties applies to every batch written after it.
		if skip := f.skip.get(); len(skip) > 0 {
			b.entries = skipMessages(b.entries, skip)
		}
		if len(b.entries) > 0 {
			if err := writeBatch(f, ctx, b.entries, f.store.PutMessages, describeMessage); err != nil {
				return err
			}
			for _, m := range b.entries {
				f.m.rows.WithLabelValues(kindLabel(m.Kind)).Inc()
			}
			f.lastMsgTime.Store(b.newest)
		}
		f.msgOff.Store(b.next)
		return nil
	})
}

func kindLabel(k backup.Kind) string {
	switch k {
	case backup.KindRetry:
		return "retry"
	case backup.KindDead:
		return "dead"
	}
	return "message"
}

func (f *follower) copyActions(ctx context.Context, c *remoting.Client, t target, g geometry) error {
	return pipeline(ctx, f.actOff.Load(), func(ctx context.Context, off int64) (parsed[actionlog.Action], error) {
		data, err := f.fetch(ctx, c, t, protocol.SyncTypeAction, off)
		if err != nil || len(data) == 0 {
			return parsed[actionlog.Action]{next: off}, err
		}
		actions, next, err := replayActions(data, off, g)
		if err != nil {
			return parsed[actionlog.Action]{}, fmt.Errorf("slave %s: %w", t.addr, err)
		}
		if next == off {
			return parsed[actionlog.Action]{}, fmt.Errorf("slave %s sent %d bytes of its action log at %d that hold no whole record", t.addr, len(data), off)
		}
		return parsed[actionlog.Action]{entries: actions, next: next}, nil
	}, func(ctx context.Context, b parsed[actionlog.Action]) error {
		return f.applyActions(ctx, t.group, b.entries, b.next)
	})
}

// applyActions turns actions into records, writes them and moves the
// action offset to next; if the write does not happen (ctx ended) the
// pull map is rolled back, so a later replay resolves the same acks.
func (f *follower) applyActions(ctx context.Context, group string, actions []actionlog.Action, next int64) error {
	f.actMu.Lock()
	defer f.actMu.Unlock()
	f.pulls.begin()
	var recs []backup.Record
	var unresolved int64
	for _, a := range actions {
		var u int64
		recs, u = f.pulls.apply(a, group, recs)
		unresolved += u
	}
	if skip := f.skip.get(); len(skip) > 0 {
		// The pulls of skipped subjects stay in the pull map (an ack still
		// finds its pull); only their records are not written.
		recs = skipRecords(recs, skip)
	}
	if len(recs) > 0 {
		if err := writeBatch(f, ctx, recs, f.store.PutRecords, describeRecord); err != nil {
			f.pulls.rollback()
			return err
		}
	}
	f.pulls.commit()
	f.pulls.expire()
	f.pending.Store(int64(f.pulls.pending()))
	f.actOff.Store(next)
	f.m.rows.WithLabelValues("record").Add(float64(len(recs)))
	if unresolved > 0 {
		f.unresolvedAcks.Add(unresolved)
		f.m.unresolvedAcks.Add(float64(unresolved))
	}
	return nil
}

// refusedError: the store refused a write maxRefusals times in a row for a
// reason other than being unavailable or slow.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// unavailable reports whether err means the store could not be reached in
// time (then retrying is all there is to do).
func unavailable(err error) bool {
	return errors.Is(err, backup.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// writeTries runs put until the store accepts it, pausing with backoff
// between failures (a store down or slow: nothing is skipped, the offsets
// wait); after maxRefusals (> 0) consecutive failures that are not
// unavailability it returns a *refusedError. Otherwise it fails only when
// ctx ends.
func (f *follower) writeTries(ctx context.Context, maxRefusals int, put func(context.Context) error) error {
	b := backoff.Backoff{Min: f.settings.StoreRetryMin, Max: f.settings.StoreRetryMax}
	failing := false
	refusals := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, f.settings.StoreTimeout)
		start := time.Now()
		err := put(wctx)
		cancel()
		f.m.writeSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			if failing {
				f.log.Info("the store accepts writes again; the backup continues where it stopped")
			}
			f.setStoreErr(nil)
			f.m.storeUp.Set(1)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.m.storeErrors.Inc()
		f.m.storeUp.Set(0)
		f.setStoreErr(err)
		if !unavailable(err) {
			if refusals++; maxRefusals > 0 && refusals >= maxRefusals {
				return &refusedError{err}
			}
		}
		if !failing {
			failing = true
			why := "it failed"
			if unavailable(err) {
				why = "it is unavailable or slower than backup.store.timeout.ms"
			}
			f.log.Error(fmt.Sprintf("cannot write to the store (%s); the backup holds its checkpoint and retries with backoff up to %s — nothing is skipped", why, f.settings.StoreRetryMax),
				"error", err)
		}
		if b.Wait(ctx) != nil {
			return ctx.Err()
		}
	}
}

// heartbeat learns the slave's ends every second (lag) and keeps the
// connection from looking idle while writes wait for the store.
func (f *follower) heartbeat(ctx context.Context, c *remoting.Client) {
	for {
		req := protocol.SyncLogRequest{Type: protocol.SyncTypeHeartbeat, MessageLogOffset: f.msgOff.Load(), ActionLogOffset: f.actOff.Load()}
		cctx, cancel := context.WithTimeout(ctx, f.settings.RequestTimeout)
		resp, err := c.Call(cctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, req))
		cancel()
		if err == nil && resp.Header.Code == protocol.CodeSuccess {
			if hb, err := protocol.DecodeSyncHeartbeatResponse(resp.Body); err == nil {
				f.slaveMsgEnd.Store(hb.MessageLogMaxOffset)
				f.slaveActEnd.Store(hb.ActionLogMaxOffset)
			}
		}
		if backoff.Sleep(ctx, time.Second) != nil {
			return
		}
	}
}

// Lag is how far the backup is behind the slave it follows.
type Lag struct {
	MessageBytes int64 `json:"messageBytes"` // the slave's message-log end minus the backup's offset (-1: unknown)
	ActionBytes  int64 `json:"actionBytes"`  // likewise for the action log (0 with enable.record=false)
	// Seconds is the age of the newest message written, while the backup
	// is behind the slave's message log (0 when caught up).
	Seconds float64 `json:"seconds"`
}

func (f *follower) lag() Lag {
	l := Lag{MessageBytes: -1, ActionBytes: -1}
	if end := f.slaveMsgEnd.Load(); end >= 0 {
		l.MessageBytes = max(0, end-f.msgOff.Load())
		if l.MessageBytes > 0 {
			if ts := f.lastMsgTime.Load(); ts > 0 {
				l.Seconds = max(0, time.Since(time.UnixMilli(ts)).Seconds())
			}
		}
	}
	if end := f.slaveActEnd.Load(); end >= 0 {
		l.ActionBytes = max(0, end-f.actOff.Load())
	}
	if !f.settings.EnableRecord {
		l.ActionBytes = 0
	}
	return l
}
