package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage/checkpoint"
)

// SlaveConfig configures a Slave.
type SlaveConfig struct {
	// MasterAddr is the master's sync address, host:sync.port (the broker
	// learns it from the metaserver).
	MasterAddr string
	Store      SlaveStore
	// Logs names the store's logs and the second log's sync type; the zero
	// value is BrokerLogs. It must match the master's.
	Logs Logs
	// RequestTimeout (slave.sync.timeout) bounds each request; 0: DefaultSlaveSyncTimeout.
	RequestTimeout time.Duration
	// RetryInterval is the pause after a failure before reconnecting, less up
	// to half of it at random (slaves of a restarted master spread out); 0:
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// HeartbeatInterval is the pause between heartbeats; 0: DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// Secret (sync.secret) proves to the master that this is the group's
	// slave, and the master's answer proves it holds the same key (package
	// syncauth). Both sides need the same secret, or both none.
	Secret syncauth.Secret
	// Group is this slave's broker group, named and proved in the handshake.
	Group      string
	Logger     hclog.Logger          // nil: no logging
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// Slave copies a master's message log and action log into its store: one
// loop per log asks for the bytes after its copy's end and appends them,
// and a heartbeat loop reports both ends every second. It starts in any
// order with the master, survives restarts of either side and catches up
// on its own. See the package documentation.
type Slave struct {
	cfg     SlaveConfig
	store   SlaveStore
	logs    Logs
	log     hclog.Logger
	metrics *slaveMetrics
	running atomic.Bool

	masterMessageEnd atomic.Int64 // from the last heartbeat or handshake (-1: unknown)
	masterActionEnd  atomic.Int64
	lastContact      atomic.Int64 // unix nanoseconds of the master's last successful answer (0: never)
	caughtUpOnce     atomic.Bool  // the message log reached the master's end at least once in this run

	mu          sync.Mutex
	cur         *session      // nil: not connected
	dialing     chan struct{} // closed when the connection attempt in progress ends
	nextAttempt time.Time
	retry       backoff.Backoff // RetryInterval with jitter, for nextAttempt
	sessions    uint64
	state       string // key of the last logged state (log only on changes)
	lastErr     string
}

// session is one connection to the master, after a successful handshake.
type session struct {
	id       uint64
	client   *remoting.Client
	actionCP *checkpoint.ActionCheckpoint // the master's pull-log table to install (nil: none)
	caughtUp [2]atomic.Bool               // by Log: an empty answer was seen
	// masterMessageEnd is the master's message-log end at the handshake:
	// everything the master acknowledged before this connection lies before it.
	masterMessageEnd int64
}

// NewSlave validates cfg. Run starts copying.
func NewSlave(cfg SlaveConfig) (*Slave, error) {
	if cfg.Store == nil {
		return nil, errors.New("replication slave: SlaveConfig.Store is nil")
	}
	if cfg.MasterAddr == "" {
		return nil, errors.New("replication slave: SlaveConfig.MasterAddr is empty: give the master's host:sync.port")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultSlaveSyncTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	cfg.Logs = cfg.Logs.orDefault()
	s := &Slave{cfg: cfg, store: cfg.Store, logs: cfg.Logs, log: cfg.Logger.With("master", cfg.MasterAddr),
		retry: backoff.Backoff{Min: cfg.RetryInterval, Max: cfg.RetryInterval}}
	s.masterMessageEnd.Store(-1)
	s.masterActionEnd.Store(-1)
	return s, nil
}

// Run copies from the master until ctx ends, then closes the connection and
// returns nil once its goroutines (one per log and a heartbeat) have
// stopped. Failures are retried every RetryInterval forever; they are
// logged when the state changes, not at every attempt. Run may be called
// once.
func (s *Slave) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("replication slave: Run called twice")
	}
	m, err := newSlaveMetrics(s.cfg.Registerer, s)
	if err != nil {
		return err
	}
	s.metrics = m
	defer m.unregister()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.runLog(ctx, MessageLog) }()
	go func() { defer wg.Done(); s.runLog(ctx, SecondLog) }()
	go func() { defer wg.Done(); s.runHeartbeat(ctx) }()
	wg.Wait()
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	if cur != nil {
		cur.client.Close()
	}
	s.metrics.connected.Set(0)
	s.log.Info("replication stopped", "message_log_end", s.store.LogEnd(MessageLog), "action_log_end", s.store.LogEnd(SecondLog))
	return nil
}

// SlaveStatus is the Slave's view of replication.
type SlaveStatus struct {
	Master           string
	Connected        bool
	MessageEnd       int64  // this store's message-log end
	ActionEnd        int64  // this store's action-log end
	MasterMessageEnd int64  // the master's, as of the last heartbeat or handshake (-1: unknown)
	MasterActionEnd  int64  // likewise
	LastError        string // why the last attempt failed ("" once connected)
	// LastContact is when the master last answered (zero: never in this run).
	LastContact time.Time
	// CaughtUp: the message log reached, in this run, the master's end as
	// of a handshake (or an empty answer). Until then the copy may lack
	// messages the master acknowledged long ago (a wiped slave re-copying);
	// after it, a master with wait.slave.wrote acknowledges nothing the
	// slave has not written.
	CaughtUp bool
}

// Status returns the replication state.
func (s *Slave) Status() SlaveStatus {
	s.mu.Lock()
	st := SlaveStatus{Master: s.cfg.MasterAddr, Connected: s.cur != nil, LastError: s.lastErr}
	s.mu.Unlock()
	st.MessageEnd, st.ActionEnd = s.store.LogEnd(MessageLog), s.store.LogEnd(SecondLog)
	st.MasterMessageEnd, st.MasterActionEnd = s.masterMessageEnd.Load(), s.masterActionEnd.Load()
	if n := s.lastContact.Load(); n != 0 {
		st.LastContact = time.Unix(0, n)
	}
	st.CaughtUp = s.caughtUpOnce.Load()
	return st
}

// Failure kinds, which decide how a failure is logged.
type (
	unreachableError struct{ err error }  // cannot connect or the handshake call failed
	lostError        struct{ err error }  // a request on an established connection failed
	refusedError     struct{ msg string } // the master or this store refuses: needs a person, unless it clears
)

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *lostError) Error() string        { return e.err.Error() }
func (e *refusedError) Error() string     { return e.msg }

func refused(format string, args ...any) error {
	return &refusedError{msg: fmt.Sprintf(format, args...)}
}

// session returns the current connection, connecting (one attempt at a
// time, at most every RetryInterval) when there is none.
func (s *Slave) session(ctx context.Context) (*session, error) {
	for {
		s.mu.Lock()
		if c := s.cur; c != nil {
			s.mu.Unlock()
			return c, nil
		}
		if ch := s.dialing; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if wait := time.Until(s.nextAttempt); wait > 0 {
			s.mu.Unlock()
			if err := backoff.Sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		ch := make(chan struct{})
		s.dialing = ch
		s.mu.Unlock()

		sess, err := s.connect(ctx)

		s.mu.Lock()
		s.dialing = nil
		close(ch)
		if err == nil {
			s.cur = sess
			s.retry.Reset()
		} else {
			s.nextAttempt = time.Now().Add(s.retry.Next())
		}
		s.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.report(err)
			continue
		}
		s.metrics.connected.Set(1)
		s.setState("connected", "", func() {
			s.log.Info("connected to the master; copying its logs",
				"message_log_end", s.store.LogEnd(MessageLog), "master_message_log_end", s.masterMessageEnd.Load(),
				"action_log_end", s.store.LogEnd(SecondLog), "master_action_log_end", s.masterActionEnd.Load())
		})
		return sess, nil
	}
}

// fail drops sess (if it is still the current connection) after err; the
// next attempt waits RetryInterval.
func (s *Slave) fail(sess *session, err error) {
	s.mu.Lock()
	if s.cur != sess {
		s.mu.Unlock()
		return // another loop reported this connection already
	}
	s.cur = nil
	s.nextAttempt = time.Now().Add(s.retry.Next())
	s.mu.Unlock()
	sess.client.Close()
	s.metrics.connected.Set(0)
	s.report(err)
}

// report logs a failure if the state changed since the last report.
func (s *Slave) report(err error) {
	s.metrics.errors.Inc()
	every := s.cfg.RetryInterval.String()
	var u *unreachableError
	var l *lostError
	var r *refusedError
	switch {
	case errors.As(err, &u):
		s.setState("unreachable", err.Error(), func() {
			s.log.Warn(fmt.Sprintf("master %s not reachable, retrying every %s; the slave catches up when it appears", s.cfg.MasterAddr, every),
				"error", err)
		})
	case errors.As(err, &l):
		s.setState("lost", err.Error(), func() {
			s.log.Warn(fmt.Sprintf("lost the connection to master %s, reconnecting every %s", s.cfg.MasterAddr, every), "error", err)
		})
	case errors.As(err, &r):
		s.setState("refused: "+r.msg, r.msg, func() {
			s.log.Error(fmt.Sprintf("replication from master %s stopped: %s (retrying every %s)", s.cfg.MasterAddr, r.msg, every))
		})
	default:
		s.setState("error: "+err.Error(), err.Error(), func() {
			s.log.Error(fmt.Sprintf("replication from master %s failed, retrying every %s", s.cfg.MasterAddr, every), "error", err)
		})
	}
}

// setState runs logIt if key differs from the last state.
func (s *Slave) setState(key, lastErr string, logIt func()) {
	s.mu.Lock()
	changed := s.state != key
	s.state = key
	s.lastErr = lastErr
	s.mu.Unlock()
	if changed {
		logIt()
	}
}

// connect dials the master and shakes hands (SYNC_CHECKPOINT_REQUEST V2).
func (s *Slave) connect(ctx context.Context) (*session, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	c, err := remoting.Dial(cctx, s.cfg.MasterAddr, 0)
	if err != nil {
		return nil, &unreachableError{err}
	}
	auth := syncauth.Client{Secret: s.cfg.Secret, Group: s.cfg.Group, Role: syncauth.RoleSlave}
	err = auth.Authenticate(cctx, func(ctx context.Context, body []byte) (protocol.Frame, error) {
		return c.Call(ctx, protocol.CodeSyncAuth, body)
	})
	var ref *syncauth.Refusal
	switch {
	case err == nil:
	case errors.Is(err, syncauth.ErrNotSupported):
		// A qmq-go master older than SYNC_AUTH, and no secret here: it
		// serves unauthenticated slaves, as before.
		s.log.Debug("the master does not know SYNC_AUTH; syncing unauthenticated (neither side has sync.secret)")
	case errors.As(err, &ref):
		c.Close()
		return nil, refused("%s", ref.Msg)
	default:
		c.Close()
		return nil, &unreachableError{err}
	}
	resp, err := c.Call(cctx, protocol.CodeSyncCheckpointRequest, []byte{protocol.SyncCheckpointV2})
	if err != nil {
		c.Close()
		return nil, &unreachableError{err}
	}
	sess, err := s.handshake(resp)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.mu.Lock()
	s.sessions++
	sess.id = s.sessions
	s.mu.Unlock()
	sess.client = c
	return sess, nil
}

// handshake checks the master's answer against this store: equal segment
// sizes, and copies that can continue (an empty log starts at the master's
// oldest replicable offset). It raises this store's sequences to the
// master's and keeps the master's pull-log table to install when the action
// log reaches its offset.
func (s *Slave) handshake(resp protocol.Frame) (*session, error) {
	addr := s.cfg.MasterAddr
	switch resp.Header.Code {
	case protocol.CodeSuccess:
	case protocol.CodeUnknownCode:
		return nil, refused("%s does not serve SYNC_CHECKPOINT_REQUEST: check that it is the sync.port of a master (a broker's or a delay server's)", addr)
	default:
		return nil, refused("the master refused the handshake (%s): %s", protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	r, err := protocol.DecodeSyncCheckpointResponse(resp.Body)
	if err != nil {
		return nil, refused("malformed handshake answer: %v", err)
	}
	if r.Version != protocol.SyncCheckpointV2 {
		return nil, refused("the master answered the handshake with version %d: it is not a qmq-go master (a Java QMQ one?), which this slave cannot copy", r.Version)
	}
	info, mine := r.Replica, s.store.ReplicaInfo()
	s.masterMessageEnd.Store(info.MessageMaxOffset)
	s.masterActionEnd.Store(info.ActionMaxOffset)
	for _, c := range []struct {
		log                    Log
		master, slave          int64
		masterStart, masterEnd int64
	}{
		{MessageLog, info.MessageSegmentSize, mine.SegmentSize[MessageLog], info.MessageMinOffset, info.MessageMaxOffset},
		{SecondLog, info.ActionSegmentSize, mine.SegmentSize[SecondLog], info.ActionMinOffset, info.ActionMaxOffset},
	} {
		kind, sizeKey := s.logs.Names[c.log], s.logs.SizeKeys[c.log]
		if c.master != c.slave {
			return nil, refused("segment sizes differ: the master's %s is %d, this slave's is %d; a slave writes the master's bytes at the master's offsets, "+
				"so set %s=%d in this slave's %s (if its store already holds data, delete its store.root too) and restart it",
				sizeKey, c.master, c.slave, sizeKey, c.master, s.logs.ConfigFile)
		}
		if s.store.LogEmpty(c.log) {
			if c.masterStart < 0 {
				return nil, refused("the master's %s cannot be copied yet: its active segment was written under another %s; "+
					"copying starts once the master has moved on to a new segment", kind, sizeKey)
			}
			if s.store.LogEnd(c.log) != c.masterStart {
				if err := s.store.SetLogStart(c.log, c.masterStart); err != nil {
					return nil, refused("cannot start the empty %s at the master's offset %d: %v", kind, c.masterStart, err)
				}
			}
			continue
		}
		end := s.store.LogEnd(c.log)
		if c.masterStart >= 0 && end < c.masterStart {
			return nil, refused("this slave's %s ends at %d, but the master's now starts at %d: retention on the master deleted bytes this slave never copied, "+
				"so it cannot catch up. To recover, stop this slave, delete its store.root and start it again: it copies everything the master retains",
				kind, end, c.masterStart)
		}
		if end > c.masterEnd {
			return nil, refused("this slave's %s ends at %d, past the master's end %d: the slave holds bytes the master does not have "+
				"(the master lost unflushed data in a crash, or this slave copied another master). Promote this slave if its copy is the one to keep; "+
				"otherwise stop it, delete its store.root and start it again to copy this master", kind, end, c.masterEnd)
		}
	}
	sess := &session{masterMessageEnd: info.MessageMaxOffset}
	sink, ok := s.store.(CheckpointSink)
	if !ok { // a delay server's store: nothing besides the logs to copy
		return sess, nil
	}
	mcp, err := checkpoint.DecodeMessage(r.MessageCheckpoint)
	if err != nil {
		return nil, refused("the master's message checkpoint is malformed: %v", err)
	}
	sink.RaiseSequences(mcp.MaxSequences)
	acp, err := checkpoint.DecodeAction(r.ActionCheckpoint)
	if err != nil {
		return nil, refused("the master's action checkpoint is malformed: %v", err)
	}
	if s.store.LogEnd(SecondLog) <= acp.Offset {
		sess.actionCP = &acp
	}
	return sess, nil
}

// runLog copies one log until ctx ends.
func (s *Slave) runLog(ctx context.Context, kind Log) {
	var pending *checkpoint.ActionCheckpoint
	var pendingFrom *session
	for {
		sess, err := s.session(ctx)
		if err != nil {
			return
		}
		if sess != pendingFrom {
			pendingFrom, pending = sess, nil
			if kind == SecondLog {
				pending = sess.actionCP
			}
		}
		off := s.store.LogEnd(kind)
		if pending != nil && off >= pending.Offset {
			if off == pending.Offset {
				if err := s.store.(CheckpointSink).InstallActionCheckpoint(*pending); err != nil {
					s.fail(sess, refused("install the master's pull-log table: %v", err))
					continue
				}
				s.log.Debug("installed the master's pull-log table", "action_log_offset", off)
			}
			pending = nil
		}
		req := protocol.SyncLogRequest{Type: s.logs.syncType(kind)}
		if kind == MessageLog {
			req.MessageLogOffset = off
		} else {
			req.ActionLogOffset = off
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := sess.client.Call(cctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, req))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.fail(sess, &lostError{err})
			continue
		}
		if resp.Header.Code != protocol.CodeSuccess {
			s.fail(sess, refused("the master refused to send its %s from offset %d (%s): %s", s.logs.Names[kind], off,
				protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body)))
			continue
		}
		s.lastContact.Store(time.Now().UnixNano())
		r, err := protocol.DecodeSyncLogResponse(resp.Body)
		if err != nil || r.StartOffset != off {
			s.fail(sess, refused("malformed answer to a request for the %s from offset %d (bytes from %d): %v", s.logs.Names[kind], off, r.StartOffset, err))
			continue
		}
		data := r.Data
		if len(data) == 0 {
			s.caughtUp(sess, kind)
			continue
		}
		if pending != nil && off+int64(len(data)) > pending.Offset {
			data = data[:pending.Offset-off] // stop where the master's table was taken
		}
		end, err := s.store.AppendRaw(kind, off, data)
		if err != nil {
			s.fail(sess, refused("cannot append the master's %s bytes at offset %d: %v", s.logs.Names[kind], off, err))
			continue
		}
		if end == off {
			s.fail(sess, refused("the master sent %d bytes of its %s at offset %d that hold no whole record", len(data), s.logs.Names[kind], off))
			continue
		}
		s.metrics.bytes[kind].Add(float64(end - off))
		if kind == MessageLog && end >= sess.masterMessageEnd {
			s.caughtUpOnce.Store(true)
		}
	}
}

// caughtUp logs once per connection when both logs have reached the master's end.
func (s *Slave) caughtUp(sess *session, kind Log) {
	if kind == MessageLog {
		s.caughtUpOnce.Store(true)
	}
	if sess.caughtUp[kind].Swap(true) {
		return
	}
	if sess.caughtUp[MessageLog].Load() && sess.caughtUp[SecondLog].Load() {
		s.log.Info("caught up with the master", "message_log_end", s.store.LogEnd(MessageLog),
			"action_log_end", s.store.LogEnd(SecondLog))
	}
}

// runHeartbeat reports both ends every HeartbeatInterval (the master's lag
// metrics and QMQ's protocol) and learns the master's ends.
func (s *Slave) runHeartbeat(ctx context.Context) {
	for {
		sess, err := s.session(ctx)
		if err != nil {
			return
		}
		req := protocol.SyncLogRequest{Type: protocol.SyncTypeHeartbeat,
			MessageLogOffset: s.store.LogEnd(MessageLog), ActionLogOffset: s.store.LogEnd(SecondLog)}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := sess.client.Call(cctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil, req))
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if sess.client.Err() != nil { // the connection broke; a slow answer alone is no reason to reconnect
				s.fail(sess, &lostError{err})
				continue
			}
			s.log.Debug("heartbeat failed", "error", err)
		case resp.Header.Code == protocol.CodeSuccess:
			s.lastContact.Store(time.Now().UnixNano())
			if hb, err := protocol.DecodeSyncHeartbeatResponse(resp.Body); err == nil {
				s.masterMessageEnd.Store(hb.MessageLogMaxOffset)
				s.masterActionEnd.Store(hb.ActionLogMaxOffset)
			}
		default:
			s.log.Debug("heartbeat refused", "status", protocol.CodeName(resp.Header.Code, true), "error", protocol.DecodeErrorBody(resp.Body))
		}
		if backoff.Sleep(ctx, s.cfg.HeartbeatInterval) != nil {
			return
		}
	}
}
