package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/replication/syncauth"
)

// slaveSession is the one connection whose reports count: the slave's
// offsets, wait.slave.wrote and the lag all come from it alone.
type slaveSession struct {
	conn          *remoting.Conn
	addr          string
	authenticated bool // proved the secret (false: the master has no sync.secret)
}

// connState is the master's view of one sync connection. Requests of one
// connection run concurrently; mu orders the handshake against them.
type connState struct {
	mu    sync.Mutex
	hello bool                // a SYNC_AUTH hello arrived (one per connection)
	hs    *syncauth.Handshake // waiting for the proof
	sess  *slaveSession       // set once the connection became the slave's session
	// reader: the connection authenticated as a reader (syncauth.RoleBackup):
	// it may copy the logs, but it is never the slave's session, so nothing
	// it reports counts towards WaitSlaveWrote or the lag.
	reader bool
}

func (m *Master) connState(c *remoting.Conn) *connState {
	return c.LoadOrStore(&connState{}).(*connState)
}

// serveAuth serves SYNC_AUTH: the hello and the proof of package syncauth.
// A connection that passes becomes the slave's session (claim); any failure
// is answered BROKER_REJECT and ends the connection, so that every try
// needs a new connection and a new nonce.
func (m *Master) serveAuth(ctx context.Context, req *remoting.Request) protocol.Frame {
	h := req.Frame.Header
	r, err := protocol.DecodeSyncAuthRequest(req.Frame.Body)
	if err != nil {
		return m.refuseConn(req, "bad_request", protocol.CodeParamError, err.Error())
	}
	st := m.connState(req.Conn)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sess != nil || st.reader {
		return m.refuseConn(req, "auth", protocol.CodeParamError, "sync auth: this connection has authenticated already")
	}
	switch r.Step {
	case protocol.SyncAuthHello:
		if st.hello {
			return m.refuseConn(req, "auth", protocol.CodeParamError, "sync auth: one hello per connection; reconnect to start again")
		}
		st.hello = true
		hs, ch, err := m.auth.Hello(&r)
		if err != nil {
			return m.authFailed(req, err)
		}
		if hs.Done() { // no secret on either side
			if hs.Role() == syncauth.RoleBackup {
				m.admitReader(req, st, false)
			} else if err := m.claim(ctx, req.Conn, st, false); err != nil {
				return m.authFailed(req, err)
			}
		} else {
			st.hs = hs
		}
		return protocol.NewResponse(h, protocol.CodeSuccess, protocol.AppendSyncAuthChallenge(nil, &ch))
	default: // SyncAuthProve
		hs := st.hs
		st.hs = nil
		if hs == nil {
			return m.refuseConn(req, "auth", protocol.CodeParamError, "sync auth: a proof without a hello on this connection")
		}
		theirs, err := hs.Prove(r.Proof)
		if err != nil {
			return m.authFailed(req, err)
		}
		if hs.Role() == syncauth.RoleBackup {
			m.admitReader(req, st, true)
			return protocol.NewResponse(h, protocol.CodeSuccess, theirs)
		}
		if err := m.claim(ctx, req.Conn, st, true); err != nil {
			return m.authFailed(req, err)
		}
		return protocol.NewResponse(h, protocol.CodeSuccess, theirs)
	}
}

// claim makes the connection the slave's session once CheckSlave accepts
// its address. It replaces the current session, whose connection is closed:
// a restarted slave reconnects while the master may still hold its old,
// half-open connection for up to IdleTimeout, and refusing it would stall
// every wait.slave.wrote send that long. Only a connection that
// authenticated (or, without sync.secret, any from the registered address)
// gets here, so a replacement is the slave itself.
func (m *Master) claim(ctx context.Context, c *remoting.Conn, st *connState, authenticated bool) error {
	remote := c.RemoteAddr()
	if check := m.cfg.CheckSlave; check != nil {
		if err := check(ctx, remote); err != nil {
			return &notSlaveError{err}
		}
	}
	sess := &slaveSession{conn: c, addr: remote.String(), authenticated: authenticated}
	m.slaveMu.Lock()
	prev := m.session
	m.session = sess
	// Offsets are the session's own: a replaced connection's reports must
	// not stand for the new one's.
	m.slaveMessage.Store(-1)
	m.slaveAction.Store(-1)
	m.slaveMu.Unlock()
	st.sess = sess
	how := "authenticated with sync.secret"
	if !authenticated {
		how = "unauthenticated: this master has no sync.secret"
	}
	switch {
	case prev == nil:
		m.log.Info("a slave is syncing", "slave", sess.addr, "auth", how)
	default:
		prev.conn.Close()
		m.log.Info("the slave's new sync connection replaces the previous one (a restarted slave reconnects from a new port)",
			"slave", sess.addr, "before", prev.addr, "auth", how)
	}
	return nil
}

// admitReader marks the connection a reader's: it is served log bytes and
// checkpoints, and is not the slave's session (it replaces none and its
// offsets count for nothing), whatever address it comes from.
func (m *Master) admitReader(req *remoting.Request, st *connState, authenticated bool) {
	st.reader = true
	how := "authenticated with sync.secret"
	if !authenticated {
		how = "unauthenticated: this sync port has no sync.secret"
	}
	m.log.Info("a reader (backup) is copying the logs; its offsets do not count for wait.slave.wrote", "remote", req.RemoteAddr.String(), "auth", how)
}

// notSlaveError: CheckSlave refused the connection's address.
type notSlaveError struct{ err error }

func (e *notSlaveError) Error() string { return e.err.Error() }
func (e *notSlaveError) Unwrap() error { return e.err }

// admit returns the session a sync request belongs to, or false and the
// refusal to answer with. Without sync.secret, a connection that sent no
// hello (a qmq-go slave older than SYNC_AUTH) becomes the session at its
// first request, if CheckSlave accepts it.
func (m *Master) admit(ctx context.Context, req *remoting.Request) (*slaveSession, protocol.Frame, bool) {
	st := m.connState(req.Conn)
	st.mu.Lock()
	if st.reader {
		st.mu.Unlock()
		return nil, protocol.Frame{}, true
	}
	sess := st.sess
	var claimErr error
	if sess == nil && !m.cfg.Secret.Set() && !st.hello && !m.cfg.ReadersOnly {
		if claimErr = m.claim(ctx, req.Conn, st, false); claimErr == nil {
			sess = st.sess
		}
	}
	hello := st.hello
	st.mu.Unlock()
	switch {
	case claimErr != nil:
		return nil, m.authFailed(req, claimErr), false
	case sess == nil && hello:
		return nil, m.refuseConn(req, "auth", protocol.CodeBrokerReject, "sync auth: send the proof (SYNC_AUTH step 2) before sync requests"), false
	case sess == nil && m.cfg.ReadersOnly:
		return nil, m.refuseConn(req, "auth", protocol.CodeBrokerReject, fmt.Sprintf(
			"this sync port (a slave's, group %s) serves readers only: send SYNC_AUTH with role %q first; a slave copies from the group's master",
			m.groupName(), syncauth.RoleBackup)), false
	case sess == nil:
		return nil, m.refuseConn(req, "auth", protocol.CodeBrokerReject, fmt.Sprintf(
			"sync auth required: the master of group %s has sync.secret and serves only a slave that proves it (SYNC_AUTH) first; set the same sync.secret on the slave (a qmq-go slave older than SYNC_AUTH must be upgraded)",
			m.groupName())), false
	}
	m.slaveMu.Lock()
	cur := m.session
	m.slaveMu.Unlock()
	if cur != sess {
		who := "none"
		if cur != nil {
			who = cur.addr
		}
		return nil, m.refuseConn(req, "replaced", protocol.CodeBrokerReject, fmt.Sprintf(
			"this sync connection is no longer the slave's session: a newer one replaced it (from %s)", who)), false
	}
	return sess, protocol.Frame{}, true
}

func (m *Master) groupName() string {
	if m.cfg.Group == "" {
		return "(unnamed)"
	}
	return m.cfg.Group
}

// authFailed answers a failed handshake or a refused address, logs it
// (rate-limited: a forger can try as often as it likes) and ends the
// connection.
func (m *Master) authFailed(req *remoting.Request, err error) protocol.Frame {
	reason := "auth"
	var ns *notSlaveError
	var ref *syncauth.Refusal
	switch {
	case errors.As(err, &ns):
		reason = "not_registered"
	case errors.As(err, &ref):
	default:
		m.log.Error("sync auth failed on the master's side", "remote", req.RemoteAddr.String(), "error", err)
		return m.refuseConn(req, "auth", protocol.CodeBrokerError, "sync auth: "+err.Error())
	}
	m.authLog.Error(m.log, "refused a sync connection: "+err.Error(), "remote", req.RemoteAddr.String())
	return m.refuseConn(req, reason, protocol.CodeBrokerReject, err.Error())
}

// refuseConn answers msg and closes the connection once the answer is out.
func (m *Master) refuseConn(req *remoting.Request, reason string, status int16, msg string) protocol.Frame {
	m.metrics.refused.WithLabelValues(reason).Inc()
	req.OnWritten(req.Conn.Close)
	return errorFrame(req.Frame.Header, status, msg)
}
