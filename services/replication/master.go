package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/replication/syncauth"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/checkpoint"
)

// MasterConfig configures a Master.
type MasterConfig struct {
	// Addr is the listen address of sync.port, e.g. ":20882" ("127.0.0.1:0" in tests).
	Addr  string
	Store MasterStore
	// Logs names the store's logs and the second log's sync type; the zero
	// value is BrokerLogs.
	Logs Logs
	// BatchSize (sync.batch.size) bounds the bytes of one response (a
	// record larger than that is still sent whole); 0: DefaultBatchSize.
	BatchSize int
	// SyncTimeout (message.sync.timeout.ms) is how long a request finding
	// nothing new is parked before an empty answer; appends wake it early.
	// 0: DefaultMessageSyncTimeout.
	SyncTimeout time.Duration
	// IdleTimeout closes sync connections silent for this long (slaves send a
	// heartbeat every second); 0: DefaultSyncIdleTimeout.
	IdleTimeout time.Duration
	// Secret (sync.secret) is the group's shared key: with one, a
	// connection serves sync requests only after the slave proved it holds
	// the same key (package syncauth). Without one, any connection that
	// CheckSlave accepts may sync (QMQ's behaviour).
	Secret syncauth.Secret
	// Group is the master's broker group, named and proved in the
	// handshake ("" accepts any, for tests).
	Group string
	// CheckSlave, if set, decides whether a connection from remote may be
	// the slave (the broker compares it with the metaserver's row for the
	// group's slave); it is called when a connection authenticates, before
	// anything it reports counts. A refusal's error is sent to the peer.
	CheckSlave func(ctx context.Context, remote net.Addr) error
	// MaxConnections bounds the connections to sync.port at once; 0:
	// DefaultSyncMaxConnections. Frames are bounded to 64 KiB and the bytes
	// they hold at once to 1 MiB: a slave's requests are tiny.
	MaxConnections int
	// ReadersOnly serves readers (syncauth.RoleBackup) and refuses slaves:
	// the sync port a broker slave opens for the group's backup. Without
	// it a Master serves both.
	ReadersOnly bool

	Logger     hclog.Logger          // nil: no logging
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// Master serves SYNC_LOG_REQUEST and SYNC_CHECKPOINT_REQUEST on sync.port
// for a slave, tracks the offsets the slave reports, and lets writers wait
// until the slave has written their messages (WaitSlaveWrote).
type Master struct {
	cfg     MasterConfig
	store   MasterStore
	logs    Logs
	log     hclog.Logger
	srv     *remoting.Server
	waiters *slaveWaiters
	// actionWaiters are WaitSlaveWroteActions callers (the action log's
	// offsets, reported by the same requests).
	actionWaiters *slaveWaiters
	metrics       *masterMetrics

	auth    *syncauth.Server
	authLog lograte.Limiter // refused handshakes, at most one line per interval

	// The slave's session's reports: only the current session (the one
	// connection that authenticated last) updates them.
	slaveMessage atomic.Int64 // the slave's message-log end as last reported (-1: never)
	slaveAction  atomic.Int64 // the slave's action-log end as last reported (-1: never)
	lastRequest  atomic.Int64 // unix nanoseconds of the last sync request (0: never)
	caughtUp     atomic.Int64 // unix nanoseconds of the last report at the message log's end

	slaveMu sync.Mutex
	session *slaveSession // nil: no slave has authenticated

	closeOnce sync.Once
}

// NewMaster validates cfg and binds sync.port (so that a busy port fails
// here); Run serves it.
func NewMaster(cfg MasterConfig) (*Master, error) {
	if cfg.Store == nil {
		return nil, errors.New("replication master: MasterConfig.Store is nil")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultMessageSyncTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultSyncIdleTimeout
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultSyncMaxConnections
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	cfg.Logs = cfg.Logs.orDefault()
	roles := []string{syncauth.RoleSlave, syncauth.RoleBackup}
	if cfg.ReadersOnly {
		roles = []string{syncauth.RoleBackup}
	}
	m := &Master{cfg: cfg, store: cfg.Store, logs: cfg.Logs, log: cfg.Logger, waiters: newSlaveWaiters(), actionWaiters: newSlaveWaiters(),
		auth:    &syncauth.Server{Secret: cfg.Secret, Group: cfg.Group, Roles: roles},
		authLog: lograte.Limiter{Interval: 10 * time.Second}}
	m.slaveMessage.Store(-1)
	m.slaveAction.Store(-1)
	m.srv = remoting.NewServer(remoting.ServerConfig{
		Addr:           cfg.Addr,
		Logger:         cfg.Logger.Named("sync-server"),
		IdleTimeout:    cfg.IdleTimeout,
		MaxConnections: cfg.MaxConnections,
		MaxFrameSize:   syncMaxFrameSize,
		MemoryBudget:   syncMemoryBudget,
		OnBadFrame:     func(net.Addr, error) { m.metrics.refused.WithLabelValues("bad_frame").Inc() },
	})
	metrics, err := newMasterMetrics(cfg.Registerer, m)
	if err != nil {
		return nil, err
	}
	m.metrics = metrics
	m.srv.Handle(protocol.CodeSyncLogRequest, remoting.HandlerFunc(m.serveSyncLog))
	m.srv.Handle(protocol.CodeSyncCheckpointRequest, remoting.HandlerFunc(m.serveCheckpoint))
	m.srv.Handle(protocol.CodeSyncAuth, remoting.HandlerFunc(m.serveAuth))
	if err := m.srv.Listen(); err != nil {
		m.metrics.unregister()
		return nil, fmt.Errorf("replication master: sync.port: %w", err)
	}
	return m, nil
}

// Addr is the bound sync address.
func (m *Master) Addr() net.Addr { return m.srv.Addr() }

// Run serves slaves until ctx ends or Close is called, then closes the
// Master (pending WaitSlaveWrote calls fail) and returns once every
// connection goroutine has finished.
func (m *Master) Run(ctx context.Context) error {
	err := m.srv.Serve(ctx)
	m.Close()
	return err
}

// Close stops serving and fails pending and later WaitSlaveWrote calls.
func (m *Master) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.waiters.close()
		m.actionWaiters.close()
		err = m.srv.Close()
		m.metrics.unregister()
	})
	return err
}

// WaitSlaveWrote blocks until a sync request of the slave reports a
// message-log offset at or past messageLogEnd (the end of a just-appended
// batch), i.e. the slave has written it (QMQ's wait.slave.wrote). It returns
// early with an error when ctx ends (with the slave's state, for the log)
// or the Master is closed. Callers are grouped: it is cheap with many
// concurrent callers and starts no goroutine.
func (m *Master) WaitSlaveWrote(ctx context.Context, messageLogEnd int64) error {
	err := m.waiters.wait(ctx, messageLogEnd)
	if err == nil || errors.Is(err, errClosed) {
		return err
	}
	l := m.Lag()
	state := "no slave has connected since the master started"
	if !l.LastRequest.IsZero() {
		state = fmt.Sprintf("slave %s reported message-log offset %d, last request %s ago", l.Slave, l.MessageOffset,
			time.Since(l.LastRequest).Round(time.Millisecond))
	}
	return fmt.Errorf("wait for the slave to write message-log offset %d (%s): %w", messageLogEnd, state, err)
}

// WaitSlaveWroteActions is WaitSlaveWrote for the action log: it blocks
// until the slave reports an action-log offset at or past actionLogEnd, ctx
// ends or the Master is closed. The broker uses it for the rare actions a
// failover must not lose even for a moment (where a new consumer group
// starts).
func (m *Master) WaitSlaveWroteActions(ctx context.Context, actionLogEnd int64) error {
	err := m.actionWaiters.wait(ctx, actionLogEnd)
	if err == nil || errors.Is(err, errClosed) {
		return err
	}
	l := m.Lag()
	state := "no slave has connected since the master started"
	if !l.LastRequest.IsZero() {
		state = fmt.Sprintf("slave %s reported action-log offset %d, last request %s ago", l.Slave, l.ActionOffset,
			time.Since(l.LastRequest).Round(time.Millisecond))
	}
	return fmt.Errorf("wait for the slave to write action-log offset %d (%s): %w", actionLogEnd, state, err)
}

// Lag is the slave's replication state as the master sees it.
type Lag struct {
	Slave string // address of the slave's session ("" if none has connected)
	// Authenticated: the session proved sync.secret (false without a secret).
	Authenticated bool
	LastRequest   time.Time // when (zero if none since the master started)
	MessageOffset int64     // the slave's message-log end as last reported (-1 if unknown)
	ActionOffset  int64     // the slave's action-log end as last reported (-1 if unknown)
	MessageBytes  int64     // message-log bytes the slave lacks (-1 if unknown)
	ActionBytes   int64     // action-log bytes the slave lacks (-1 if unknown)
	// MessageDelay is how old the oldest message the slave lacks is: 0 when
	// it has everything, -1 if unknown.
	MessageDelay time.Duration
}

// Lag returns the slave's replication lag.
func (m *Master) Lag() Lag {
	l := Lag{MessageOffset: m.slaveMessage.Load(), ActionOffset: m.slaveAction.Load(), MessageBytes: -1, ActionBytes: -1, MessageDelay: -1}
	if ns := m.lastRequest.Load(); ns != 0 {
		l.LastRequest = time.Unix(0, ns)
	}
	m.slaveMu.Lock()
	if m.session != nil {
		l.Slave, l.Authenticated = m.session.addr, m.session.authenticated
	}
	m.slaveMu.Unlock()
	if l.ActionOffset >= 0 {
		l.ActionBytes = max(m.store.LogEnd(SecondLog)-l.ActionOffset, 0)
	}
	if l.MessageOffset < 0 {
		return l
	}
	end := m.store.LogEnd(MessageLog)
	l.MessageBytes = max(end-l.MessageOffset, 0)
	now := time.Now()
	switch {
	case l.MessageBytes == 0:
		l.MessageDelay = 0
	default:
		ts, ok := int64(0), false
		if tm, can := m.store.(MessageTimestamper); can {
			ts, ok = tm.MessageTimestampAt(l.MessageOffset)
		}
		if ok {
			l.MessageDelay = max(now.Sub(time.UnixMilli(ts)), 0)
		} else if ns := m.caughtUp.Load(); ns != 0 { // behind retention, or only fillers missing
			l.MessageDelay = now.Sub(time.Unix(0, ns))
		}
	}
	return l
}

// noteSlave records the offsets a request of sess reports (negative: not
// reported), unless sess is no longer the slave's session. A copy request
// sets its log's offset, which goes down when a wiped slave starts over; a
// heartbeat only raises them, since it may have been sent before the copy
// request that arrived first.
func (m *Master) noteSlave(sess *slaveSession, messageOffset, actionOffset int64, heartbeat bool) {
	// Under slaveMu: a session replaced between the check and the stores
	// would report for its successor.
	if sess == nil { // a reader's request: it copies, it never counts
		return
	}
	m.slaveMu.Lock()
	defer m.slaveMu.Unlock()
	if m.session != sess {
		return
	}
	now := time.Now()
	m.lastRequest.Store(now.UnixNano())
	if actionOffset >= 0 {
		actionOffset = setOffset(&m.slaveAction, actionOffset, heartbeat)
		if actionOffset <= m.store.LogEnd(SecondLog) { // as for the message log below
			m.actionWaiters.report(actionOffset)
		}
	}
	if messageOffset < 0 {
		return
	}
	messageOffset = setOffset(&m.slaveMessage, messageOffset, heartbeat)
	end := m.store.LogEnd(MessageLog)
	if messageOffset >= end {
		m.caughtUp.Store(now.UnixNano())
	}
	if messageOffset <= end { // a slave ahead of the master holds other bytes: it proves nothing
		m.waiters.report(messageOffset)
	}
}

// setOffset stores v in p (only if larger when raiseOnly) and returns p's value.
func setOffset(p *atomic.Int64, v int64, raiseOnly bool) int64 {
	if !raiseOnly {
		p.Store(v)
		return v
	}
	for {
		cur := p.Load()
		if v <= cur {
			return cur
		}
		if p.CompareAndSwap(cur, v) {
			return v
		}
	}
}

func (m *Master) serveSyncLog(ctx context.Context, req *remoting.Request) protocol.Frame {
	h := req.Frame.Header
	r, err := protocol.DecodeSyncLogRequest(req.Frame.Body)
	if err != nil {
		m.metrics.refused.WithLabelValues("bad_request").Inc()
		return errorFrame(h, protocol.CodeParamError, err.Error())
	}
	sess, refusal, ok := m.admit(ctx, req)
	if !ok {
		return refusal
	}
	m.metrics.requests.WithLabelValues(protocol.SyncTypeName(r.Type)).Inc()
	// The second log's offset travels in the request's action-log field,
	// whatever the log (QMQ's delay slave uses the same layout).
	switch r.Type {
	case protocol.SyncTypeHeartbeat:
		m.noteSlave(sess, r.MessageLogOffset, r.ActionLogOffset, true)
		return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncHeartbeatResponse(nil, protocol.SyncHeartbeatResponse{
			MessageLogMaxOffset: m.store.LogEnd(MessageLog), ActionLogMaxOffset: m.store.LogEnd(SecondLog)}))
	case protocol.SyncTypeMessage:
		m.noteSlave(sess, r.MessageLogOffset, -1, false)
		return m.serveLog(ctx, req, MessageLog, r.MessageLogOffset)
	case m.logs.SecondSyncType:
		m.noteSlave(sess, -1, r.ActionLogOffset, false)
		return m.serveLog(ctx, req, SecondLog, r.ActionLogOffset)
	}
	m.metrics.refused.WithLabelValues("bad_request").Inc()
	return errorFrame(h, protocol.CodeBrokerError, fmt.Sprintf("sync type %s is not served by this master: it serves message=2, heartbeat=3 and %s=%d (its %s); is the slave of the other kind (broker or delay server)?",
		protocol.SyncTypeName(r.Type), protocol.SyncTypeName(m.logs.SecondSyncType), m.logs.SecondSyncType, m.logs.Names[SecondLog]))
}

// serveLog answers a copy request: the log's bytes from offset, or, when
// there are none yet, an empty answer after SyncTimeout unless an append
// comes first.
func (m *Master) serveLog(ctx context.Context, req *remoting.Request, kind Log, offset int64) protocol.Frame {
	h := req.Frame.Header
	var timer *time.Timer
	var prev <-chan struct{}
	for {
		wake := m.store.LogAppended(kind)
		if wake == prev {
			wake = nil // the same closed channel again: the log was closed; wait for the timer only
		}
		prev = wake
		v, err := m.store.ReadRaw(kind, offset, m.cfg.BatchSize)
		if err != nil {
			return m.refuse(h, kind, offset, err)
		}
		if n := v.Len(); n > 0 {
			m.metrics.bytes.WithLabelValues(m.logs.Labels[kind]).Add(float64(n))
			if f, pos := v.File(); f != nil {
				// The log's bytes go from its file to the socket (sendfile);
				// the segment stays pinned, so open, until they are sent.
				req.SetFileTail(remoting.FileTail{File: f, Offset: pos, Len: n})
				req.OnWritten(v.Release)
				return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncLogResponseHeader(nil, n, offset))
			}
			// A segment without a real file (not seen in practice): copy.
			body := make([]byte, 0, protocol.SyncLogResponseHeaderSize+n)
			body = protocol.AppendSyncLogResponseHeader(body, n, offset)
			body = append(body, v.Bytes()...)
			v.Release()
			return protocol.NewResponse(h, protocol.CodeSuccess, body)
		}
		if timer == nil {
			timer = time.NewTimer(m.cfg.SyncTimeout)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncLogResponseHeader(nil, 0, offset))
		case <-ctx.Done():
			return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncLogResponseHeader(nil, 0, offset))
		}
	}
}

// refuse explains a copy request the master cannot serve.
func (m *Master) refuse(h protocol.Header, log Log, offset int64, err error) protocol.Frame {
	kind := m.logs.Names[log]
	switch {
	case errors.Is(err, storage.ErrBeforeStart):
		m.metrics.refused.WithLabelValues("behind_retention").Inc()
		start := m.store.ReplicaInfo().Start[log]
		return errorFrame(h, protocol.CodeBrokerReject, fmt.Sprintf(
			"the slave's %s ends at %d, but the master's %s now starts at %d: retention deleted the bytes the slave lacks, so it can never catch up. "+
				"To recover, stop the slave, delete its store (store.root) and start it again: it copies everything the master retains",
			kind, offset, kind, start))
	case errors.Is(err, storage.ErrBeyondEnd):
		m.metrics.refused.WithLabelValues("slave_ahead").Inc()
		return errorFrame(h, protocol.CodeBrokerReject, fmt.Sprintf(
			"the slave's %s ends at %d, past the master's end %d: the slave holds bytes this master does not have "+
				"(the master lost unflushed data in a crash, or the slave copied another master). Promote the slave if its copy is the one to keep; "+
				"otherwise stop it, delete its store (store.root) and start it again to copy this master",
			kind, offset, m.store.LogEnd(log)))
	}
	m.metrics.refused.WithLabelValues("read_error").Inc()
	// Also what a request at an offset that is not a record boundary gets
	// (a slave asks for its own end, which always is one).
	m.log.Warn("cannot serve a sync request", "log", kind, "offset", offset, "error", err)
	return errorFrame(h, protocol.CodeBrokerError, fmt.Sprintf("the master cannot read its %s at %d: %v", kind, offset, err))
}

func (m *Master) serveCheckpoint(ctx context.Context, req *remoting.Request) protocol.Frame {
	h := req.Frame.Header
	version, err := protocol.DecodeSyncCheckpointRequest(req.Frame.Body)
	if err != nil {
		m.metrics.refused.WithLabelValues("bad_request").Inc()
		return errorFrame(h, protocol.CodeParamError, err.Error())
	}
	if _, refusal, ok := m.admit(ctx, req); !ok {
		return refusal
	}
	m.metrics.requests.WithLabelValues("checkpoint").Inc()
	// A store without checkpoints (the delay server's) sends empty ones,
	// which its slaves ignore.
	var mcp checkpoint.MessageCheckpoint
	acp := checkpoint.ActionCheckpoint{Offset: -1}
	if src, ok := m.store.(CheckpointSource); ok {
		mcp, acp = src.ReplicaCheckpoints()
	}
	mb, err := checkpoint.EncodeMessage(mcp)
	if err != nil {
		return errorFrame(h, protocol.CodeBrokerError, fmt.Sprintf("encode the message checkpoint: %v", err))
	}
	resp := protocol.SyncCheckpointResponse{Version: version, MessageCheckpoint: mb, ActionCheckpoint: checkpoint.EncodeAction(acp)}
	if version == protocol.SyncCheckpointV2 {
		info := m.store.ReplicaInfo()
		resp.Replica = protocol.SyncReplicaInfo{
			MessageSegmentSize: info.SegmentSize[MessageLog], ActionSegmentSize: info.SegmentSize[SecondLog],
			MessageMinOffset: info.Start[MessageLog], MessageMaxOffset: info.End[MessageLog],
			ActionMinOffset: info.Start[SecondLog], ActionMaxOffset: info.End[SecondLog],
		}
	}
	m.log.Debug("sync checkpoint served", "remote", req.RemoteAddr.String(), "version", version,
		"message_offset", mcp.Offset, "action_offset", acp.Offset)
	return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncCheckpointResponse(nil, &resp))
}

func errorFrame(h protocol.Header, status int16, msg string) protocol.Frame {
	return protocol.NewResponse(h, status, protocol.AppendErrorBody(nil, msg))
}
