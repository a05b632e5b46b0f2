package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/replication"
)

// Role values held in Server.role until the metaserver has answered.
const roleUnknown int32 = -1

// replica is the broker's side of master/slave replication, started once
// the metaserver has named the broker's role: a master serves sync.port, a
// slave copies its master's logs. Its goroutines belong to the Server and
// end with the ctx given to start.
type replica struct {
	s      *instance
	cancel context.CancelFunc
	wg     sync.WaitGroup
	master *replication.Master // nil unless master
	slave  *replication.Slave  // nil unless slave
	// readers serves the group's backup on a slave's sync.port (readers
	// only: it copies the logs and never counts as a slave); nil unless
	// slave, or if the port could not be bound.
	readers *replication.Master

	// waiting counts the messages parked for the slave (bounded by
	// receive.queue.size).
	waiting atomic.Int64
}

// startReplica starts the role's replication. A master that cannot bind
// sync.port is an error the broker cannot run with.
func (s *instance) startReplica(ctx context.Context, role int32, masterSyncAddr string) error {
	if old := s.replica.Load(); old != nil {
		old.stopNow() // a promotion, or replication restarted after a refused one
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &replica{s: s, cancel: cancel}
	started := false
	defer func() {
		if !started {
			cancel()
		}
	}()
	s.warnNoSyncSecret(role)
	switch role {
	case protocol.RoleMaster:
		addr := net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.SyncPort))
		m, err := replication.NewMaster(replication.MasterConfig{
			Addr: addr, Store: replication.ForBroker(s.store),
			BatchSize: s.settings.Replication.BatchSize, SyncTimeout: s.settings.Replication.MessageSyncTimeout,
			Secret: s.settings.SyncSecret, Group: s.Group(), CheckSlave: s.slaves.check,
			IdleTimeout: s.settings.Replication.IdleTimeout, MaxConnections: s.settings.Replication.MaxConnections,
			Logger: s.log.Named("sync"), Registerer: s.m.reg,
		})
		if err != nil {
			return fmt.Errorf("serve sync.port %d for the slave: %w; is another broker using it? change sync.port in %s (and the group's registration with qmq tools ReplaceBroker)",
				s.settings.SyncPort, err, FileBroker)
		}
		r.master = m
		r.wg.Go(func() {
			if err := m.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("sync server stopped", "error", err)
			}
		})
		r.wg.Go(func() { r.watchLag(ctx) })
		s.log.Info("serving the slave", "sync_addr", m.Addr().String(), "wait.slave.wrote", s.settings.WaitSlaveWrote)
	case protocol.RoleSlave:
		sl, err := replication.NewSlave(replication.SlaveConfig{
			MasterAddr: masterSyncAddr, Store: replication.ForBroker(s.store), RequestTimeout: s.settings.Replication.SlaveSyncTimeout,
			Secret: s.settings.SyncSecret, Group: s.Group(),
			Logger: s.log.Named("sync"), Registerer: s.m.reg,
		})
		if err != nil {
			return fmt.Errorf("start copying from master %s: %w", masterSyncAddr, err)
		}
		r.slave = sl
		r.wg.Go(func() {
			if err := sl.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("replication from the master stopped", "master", masterSyncAddr, "error", err)
			}
		})
		r.serveReaders(ctx)
		s.log.Info("running as slave: copying the master's logs; clients are served by the master", "master_sync_addr", masterSyncAddr)
	default:
		return fmt.Errorf("role %s has no replication", roleName(role))
	}
	started = true
	s.replica.Store(r)
	s.role.Store(role)
	return nil
}

// serveReaders opens a slave's sync.port to the group's backup (QMQ's
// backup follows the slave, keeping its reads off the master). A port that
// cannot be bound is logged, not fatal: the slave's own job, copying the
// master, does not need it.
func (r *replica) serveReaders(ctx context.Context) {
	s := r.s
	addr := net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.SyncPort))
	m, err := replication.NewMaster(replication.MasterConfig{
		Addr: addr, Store: replication.ForBroker(s.store), ReadersOnly: true,
		BatchSize: s.settings.Replication.BatchSize, SyncTimeout: s.settings.Replication.MessageSyncTimeout,
		Secret: s.settings.SyncSecret, Group: s.Group(),
		IdleTimeout: s.settings.Replication.IdleTimeout, MaxConnections: s.settings.Replication.MaxConnections,
		Logger: s.log.Named("sync-readers"), // no Registerer: the master's sync metrics are a master's
	})
	if err != nil {
		s.log.Error("cannot serve the group's backup on sync.port; the slave copies its master regardless, but the backup cannot follow this slave until sync.port is free (restart the slave then)",
			"sync_port", s.settings.SyncPort, "error", err)
		return
	}
	r.readers = m
	r.wg.Go(func() {
		if err := m.Run(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sync server for the backup stopped", "error", err)
		}
	})
}

// warnNoSyncSecret says, loudly, what a group without sync.secret risks.
func (s *instance) warnNoSyncSecret(role int32) {
	if s.settings.SyncSecret.Set() {
		return
	}
	why := "sync.secret is not set"
	if s.settings.SyncSecretFile != "" {
		why = "sync.secret.file " + s.settings.SyncSecretFile + " is empty"
	}
	risk := "this slave cannot tell its master from an impostor"
	if role == protocol.RoleMaster {
		risk = "any process that reaches sync.port can read this master's logs and pose as its slave"
		if s.settings.WaitSlaveWrote {
			risk += ", and then make it acknowledge sends (wait.slave.wrote) that no slave wrote: they are lost if the master's disk is"
		}
	}
	s.log.Warn("REPLICATION IS NOT AUTHENTICATED: "+why+"; "+risk+". Set the same sync.secret (or sync.secret.file) on the master and the slave of the group (README, Securing replication)",
		"group", s.Group(), "role", roleName(role))
}

// stop waits for the replication goroutines (their ctx has ended) and
// releases the sync port.
func (r *replica) stop() {
	if r.master != nil {
		_ = r.master.Close()
	}
	if r.readers != nil {
		_ = r.readers.Close()
	}
	r.wg.Wait()
}

// stopNow ends the replication goroutines and waits for them.
func (r *replica) stopNow() {
	r.cancel()
	r.stop()
}

// waitSlaveWrote parks a send until the slave has written the message log up
// to end (wait.slave.wrote), at most wait.slave.wrote.timeout.ms. An error
// means the messages are stored here but not known to be on the slave.
func (r *replica) waitSlaveWrote(ctx context.Context, end int64, n int) error {
	if r.waiting.Add(int64(n)) > int64(r.s.settings.ReceiveQueueSize) {
		r.waiting.Add(-int64(n))
		return fmt.Errorf("stored on the master but not confirmed: receive.queue.size (%d) messages are already waiting for the slave, so it is slow or gone (see the master's /health); the producer should send it again, to another group if it can (at-least-once)",
			r.s.settings.ReceiveQueueSize)
	}
	defer r.waiting.Add(-int64(n))
	ctx, cancel := context.WithTimeout(ctx, r.s.settings.SlaveWroteTimeout)
	defer cancel()
	if err := r.master.WaitSlaveWrote(ctx, end); err != nil {
		lag := r.master.Lag()
		who := "no slave has connected since the master started"
		if lag.Slave != "" {
			who = fmt.Sprintf("slave %s is %d bytes behind, last heard %s ago", lag.Slave, lag.MessageBytes, time.Since(lag.LastRequest).Round(time.Millisecond))
		}
		return fmt.Errorf("stored on the master, but the slave has not confirmed it within %s (%s); the producer should send it again, possibly to another group (at-least-once: it may be delivered twice)",
			r.s.settings.SlaveWroteTimeout, who)
	}
	return nil
}

// watchLag marks the group read-only through the heartbeat while the slave
// lags more than slave.message.lag.time.max.seconds, when the group runs with
// wait.slave.wrote and slave.message.lag.mark_readonly (QMQ's SyncLagChecker):
// producers then go to other groups instead of waiting on this one.
func (r *replica) watchLag(ctx context.Context) {
	s := r.s
	if !s.settings.WaitSlaveWrote || !s.settings.SlaveLagMarkReadonly {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lag := r.master.Lag()
		lagging := lag.MessageDelay < 0 || lag.MessageDelay > s.settings.SlaveLagMax
		if s.lagReadonly.Swap(lagging) != lagging {
			if lagging {
				s.log.Warn("slave is lagging: marking the group read-only for producers until it catches up",
					"slave", lag.Slave, "lag", lag.MessageDelay, "lag_bytes", lag.MessageBytes, "slave.message.lag.time.max.seconds", s.settings.SlaveLagMax)
			} else {
				s.log.Info("slave caught up: the group takes writes again", "slave", lag.Slave)
			}
		}
	}
}

// brokerState is the state sent in heartbeats: read-only while the slave
// lags (mark_readonly) or the disk is full (the store refuses messages).
func (s *instance) brokerState() int32 {
	if s.lagReadonly.Load() || s.store.DiskFull() != nil {
		return protocol.BrokerStateR
	}
	return protocol.BrokerStateRW
}

// refuseUnlessMaster answers requests only a master serves (pulls, acks,
// consume management) while this broker is a slave or its role is not
// known yet: a slave's store takes writes from the master only.
func (s *instance) refuseUnlessMaster() (protocol.Frame, bool) {
	switch s.role.Load() {
	case protocol.RoleMaster:
		return protocol.Frame{}, false
	case roleUnknown:
		return errorFrame(protocol.CodeBrokerError, "broker is starting: it has not learned its role from the metaserver yet; retry shortly"), true
	}
	return errorFrame(protocol.CodeBrokerError, "this broker is the slave of group %s and serves no clients; consumers pull from the group's master (the metaserver's routes name it)", s.Group()), true
}
