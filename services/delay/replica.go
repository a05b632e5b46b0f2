package delay

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/replication"
)

// replica is the delay server's side of master/slave replication
// (services/replication with replication.DelayLogs): a DELAY_MASTER serves
// sync.port, a DELAY_SLAVE copies its master's message log and dispatch
// log byte for byte. Its goroutines end with the ctx given to
// startReplica; stop waits for them.
type replica struct {
	wg     sync.WaitGroup
	master *replication.Master // nil unless master
	slave  *replication.Slave  // nil unless slave
}

// startReplica starts the role's replication. A master that cannot bind
// sync.port is an error the server cannot run with.
func (s *Server) startReplica(ctx context.Context, role int32, masterSyncAddr string) (*replica, error) {
	r := &replica{}
	rs := s.settings.Replication
	switch role {
	case protocol.RoleDelayMaster:
		addr := net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.SyncPort))
		m, err := replication.NewMaster(replication.MasterConfig{
			Addr: addr, Store: replStore{s.ds}, Logs: replication.DelayLogs(),
			BatchSize: rs.BatchSize, SyncTimeout: rs.MessageSyncTimeout, IdleTimeout: rs.IdleTimeout, MaxConnections: rs.MaxConnections,
			Secret: s.settings.SyncSecret, Group: s.Group(), CheckSlave: s.slaves.check,
			Logger: s.log.Named("sync"), Registerer: s.m.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("serve sync.port %d for the delay slave: %w; is another server using it? change sync.port in %s (and the group's registration with qmq tools ReplaceBroker)",
				s.settings.SyncPort, err, FileDelay)
		}
		r.master = m
		r.wg.Go(func() {
			if err := m.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("sync server stopped", "error", err)
			}
		})
		s.log.Info("serving the delay slave", "sync_addr", m.Addr().String(), "wait.slave.wrote", s.settings.WaitSlaveWrote)
	case protocol.RoleDelaySlave:
		sl, err := replication.NewSlave(replication.SlaveConfig{
			MasterAddr: masterSyncAddr, Store: replStore{s.ds}, Logs: replication.DelayLogs(),
			RequestTimeout: rs.SlaveSyncTimeout, Secret: s.settings.SyncSecret, Group: s.Group(),
			Logger: s.log.Named("sync"), Registerer: s.m.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("start copying from delay master %s: %w", masterSyncAddr, err)
		}
		r.slave = sl
		r.wg.Go(func() {
			if err := sl.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("replication from the delay master stopped", "master", masterSyncAddr, "error", err)
			}
		})
		s.log.Info("running as DELAY_SLAVE: copying the master's logs; no sends are taken and nothing is dispatched here",
			"master_sync_addr", masterSyncAddr)
	default:
		return nil, fmt.Errorf("role %s has no replication", protocol.RoleName(role))
	}
	if !s.settings.SyncSecret.Set() {
		s.log.Warn("REPLICATION IS NOT AUTHENTICATED: sync.secret is not set; any process that reaches sync.port from the slave's registered IP can read this group's logs (and, with wait.slave.wrote, make the master acknowledge sends no slave wrote). Set the same sync.secret on the master and the slave",
			"group", s.Group(), "role", protocol.RoleName(role))
	}
	return r, nil
}

// stop waits for the replication goroutines (their ctx has ended) and
// releases sync.port.
func (r *replica) stop() {
	if r.master != nil {
		_ = r.master.Close()
	}
	r.wg.Wait()
}

// waitSlaveWrote parks a send until the slave has written the message log
// up to end (wait.slave.wrote), at most wait.slave.wrote.timeout.ms. An
// error means the messages are stored here but not known to be on the slave.
func (s *Server) waitSlaveWrote(ctx context.Context, end int64) error {
	r := s.replica.Load()
	if !s.settings.WaitSlaveWrote || r == nil || r.master == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.settings.SlaveWroteTimeout)
	defer cancel()
	if err := r.master.WaitSlaveWrote(ctx, end); err != nil {
		lag := r.master.Lag()
		who := "no slave has connected since the master started"
		if lag.Slave != "" {
			who = fmt.Sprintf("slave %s is %d bytes behind, last heard %s ago", lag.Slave, lag.MessageBytes, time.Since(lag.LastRequest).Round(time.Millisecond))
		}
		return fmt.Errorf("stored on the delay master, but its slave has not confirmed it within %s (%s); the producer should send it again, possibly to another delay group (it may be delivered twice)",
			s.settings.SlaveWroteTimeout, who)
	}
	return nil
}

// health is /health's replication part.
func (r *replica) health(waitSlaveWrote bool) (*slaveHealth, *masterHealth) {
	if r.master != nil {
		l := r.master.Lag()
		h := &slaveHealth{Address: l.Slave, LagBytes: l.MessageBytes, DispatchLag: l.ActionBytes, LastRequestAgo: -1, WaitSlaveWrote: waitSlaveWrote}
		if !l.LastRequest.IsZero() {
			h.LastRequestAgo = time.Since(l.LastRequest).Milliseconds()
		}
		return h, nil
	}
	st := r.slave.Status()
	h := &masterHealth{Address: st.Master, Connected: st.Connected, BehindBytes: -1, CaughtUp: st.CaughtUp, LastError: st.LastError, LastContactMs: -1}
	if st.MasterMessageEnd >= 0 {
		h.BehindBytes = max(st.MasterMessageEnd-st.MessageEnd, 0)
	}
	if !st.LastContact.IsZero() {
		h.LastContactMs = time.Since(st.LastContact).Milliseconds()
	}
	return nil, h
}
