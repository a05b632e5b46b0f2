package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/services/syncpeer"
)

// registrar talks to the metaserver: BROKER_ACQUIRE_META, then ONLINE and
// HEARTBEATs, and OFFLINE at shutdown.
type registrar struct {
	s       *instance
	client  *meta.Client
	addr    string // metaserver TCP address of client
	group   string
	role    int32
	brokerA string // the address registered for clients
	// masterSync is the master's sync address (ip:sync.port) when this broker is a slave.
	masterSync string

	// leaseConn is the BROKER_LEASE connection (failover.go). Once the
	// broker is online it belongs to the lease-renewing goroutine, so the
	// heartbeat loop's closeMeta leaves it alone; run closes it at the end.
	leaseConn *lease.Client
	// leaseAddr is the metaserver address the lease goroutine dials: the
	// heartbeat loop moves r.addr as it locates the metaserver again, so the
	// lease side reads a copy under leaseMu.
	leaseMu   sync.Mutex
	leaseAddr string
	epoch     int64       // the group's term this broker holds as master
	ml        masterLease // the master lease, chosen once the group is known (lease_consul.go)

	consulSvc     *consul.Service // set once registered in Consul
	consulTags    string          // the tags registered, joined: a change re-registers
	consulFailing bool            // the last Consul registration attempt failed (logged once)
}

// connect locates the metaserver and dials it (closing any previous connection).
func (r *registrar) connect(ctx context.Context) error {
	r.closeMeta()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, r.s.settings.MetaEndpoint)
	if err != nil {
		return err
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		return err
	}
	r.client, r.addr = c, addr
	r.setLeaseAddr(addr)
	return nil
}

func (r *registrar) setLeaseAddr(addr string) {
	r.leaseMu.Lock()
	r.leaseAddr = addr
	r.leaseMu.Unlock()
}

func (r *registrar) getLeaseAddr() string {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	return r.leaseAddr
}

// closeMeta closes the connection of registration and heartbeats.
func (r *registrar) closeMeta() {
	if r.client != nil {
		r.client.Close()
		r.client = nil
	}
}

// close closes both connections; only for when no lease goroutine runs.
func (r *registrar) close() {
	r.closeMeta()
	if r.leaseConn != nil {
		r.leaseConn.Close()
		r.leaseConn = nil
	}
}

// explain renders an error for the one log line per failed attempt: the
// metaserver's own explanation when it refused.
func explain(err error) string {
	var lr *leaseRefused
	if errors.As(err, &lr) {
		return lr.Msg
	}
	var me *meta.Error
	if errors.As(err, &me) {
		return me.Message
	}
	return err.Error()
}

// run acquires the broker's meta (retrying), registers ONLINE and heartbeats
// until ctx ends. It returns an error only when the broker must stop.
func (r *registrar) run(ctx context.Context) error {
	defer r.close()
	defer func() {
		if r.ml != nil {
			r.ml.Close() // a held lease is left to expire: writes may still be in flight
		}
	}()
	defer r.deregisterConsul() // first thing at shutdown, so Consul stops sending clients here
	s := r.s
	// Brokers restarted together (or all of them, when the metaserver comes
	// back) spread their attempts over the second half of the interval.
	retry := backoff.Backoff{Min: s.settings.MetaRetry, Max: s.settings.MetaRetry}
	for attempt := 1; ; attempt++ {
		err := r.acquire(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		wait := retry.Next()
		s.log.Error("cannot get this broker's group and role from the metaserver; retrying", "attempt", attempt,
			"retry_in", wait, "hostname", s.hostname, "port", s.Port(), "error", explain(err))
		r.close()
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
	s.group.Store(&r.group)
	s.log.Info("broker meta acquired", "group", r.group, "role", roleName(r.role), "metaserver", r.addr, "address", r.brokerA)
	if r.role == protocol.RoleSlave {
		if err := r.checkTerm(ctx); err != nil {
			return err
		}
	}
	if err := s.startReplica(ctx, r.role, r.masterSync); err != nil {
		return err
	}
	if r.role == protocol.RoleSlave {
		// A slave takes no clients, so it does not register ONLINE (the
		// metaserver ignores slaves' registrations, as QMQ's does); it is
		// found in Consul, when configured, under role:slave.
		r.tryConsul(ctx)
		if !r.runSlave(ctx) {
			return nil
		}
		// Promoted (failover.go): serve as the group's master from here on.
		if err := s.startReplica(ctx, protocol.RoleMaster, ""); err != nil {
			return err
		}
		r.role = protocol.RoleMaster
		r.tryConsul(ctx) // role:master from now on, in place of role:slave
	} else if err := r.claimAtStart(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	for attempt := 1; ; attempt++ {
		err := r.register(ctx, protocol.BrokerRequestOnline)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if refusedLease(err) {
			return &rejoinError{reason: explain(err)}
		}
		wait := retry.Next()
		s.log.Error("ONLINE registration failed; retrying", "attempt", attempt, "retry_in", wait, "error", explain(err))
		r.close()
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
	s.online.Store(true)
	s.log.Info("broker online", "group", r.group, "address", r.brokerA)
	if s.brokerState() != protocol.BrokerStateRW {
		// ONLINE registers the group writable; a broker that starts on a
		// full disk says read-only at once rather than a heartbeat later.
		_ = r.register(ctx, protocol.BrokerRequestHeartbeat) // a failure is retried every heartbeat
	}
	r.tryConsul(ctx)

	lost := make(chan error, 1)
	if s.leaseUntil.Load() != 0 {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.renewLoop(rctx, lost) }()
		defer func() { cancel(); <-done }()
	}
	failing := false
	t := time.NewTicker(s.settings.HeartbeatInterval)
	defer t.Stop()
	for {
		// A change of the disk's state is sent at once, not at the next
		// tick: producers should leave a full broker (or come back) now.
		diskChanged := s.store.DiskChanged()
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			s.online.Store(false)
			return err
		case <-t.C:
		case <-diskChanged:
		}
		r.tryConsul(ctx)
		err := r.register(ctx, protocol.BrokerRequestHeartbeat)
		switch {
		case err == nil && failing:
			s.log.Info("heartbeats to the metaserver work again", "metaserver", r.addr)
			failing = false
		case err != nil && refusedLease(err):
			s.online.Store(false)
			return &rejoinError{reason: explain(err)}
		case err != nil && ctx.Err() == nil:
			if !failing {
				s.log.Warn("heartbeat to the metaserver failed; will locate it again and keep trying", "error", explain(err))
			}
			failing = true
			r.closeMeta() // the lease goroutine owns its own connection
		}
	}
}

// runSlave keeps the slave's Consul registration and, with failover.enable,
// watches the master (failover.go). It returns true once this broker has
// been promoted, false when ctx ends.
func (r *registrar) runSlave(ctx context.Context) bool {
	s := r.s
	if !s.settings.Failover.Enable {
		for backoff.Sleep(ctx, s.settings.HeartbeatInterval) == nil {
			r.tryConsul(ctx)
		}
		return false
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for backoff.Sleep(wctx, s.settings.HeartbeatInterval) == nil {
			r.tryConsul(wctx)
		}
	}()
	promoted := r.watchMaster(ctx)
	cancel()
	<-done
	return promoted
}

// tryConsul registers in Consul when configured, or updates the
// registration when the broker's role or state has changed; a failure is
// logged once, then retried every heartbeat.
func (r *registrar) tryConsul(ctx context.Context) {
	s := r.s
	if s.settings.ConsulAddress == "" {
		return
	}
	changed, err := r.syncConsul(ctx)
	switch {
	case err == nil:
		if changed {
			s.log.Info("registered in consul", "service", s.settings.ConsulService, "address", r.brokerA, "group", r.group,
				"tags", r.consulTags, "consul", s.settings.ConsulAddress)
		}
		r.consulFailing = false
	case ctx.Err() != nil:
	case !r.consulFailing:
		r.consulFailing = true
		s.log.Error("consul registration failed; will retry every heartbeat (QMQ clients find brokers through the metaserver and are not affected)",
			"consul", s.settings.ConsulAddress, "retry_in", s.settings.HeartbeatInterval, "error", err)
	}
}

// deregisterConsul removes the broker from Consul at shutdown.
func (r *registrar) deregisterConsul() {
	if r.consulSvc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.consulSvc.Deregister(ctx); err != nil {
		r.s.log.Warn("consul deregistration failed; the agent removes the service once its check has been critical for consul.deregister.critical.after.ms",
			"error", err, "consul.deregister.critical.after.ms", r.s.settings.ConsulDeregisterAfter.Milliseconds())
		return
	}
	r.consulSvc, r.consulTags = nil, ""
	r.s.log.Info("deregistered from consul", "service", r.s.settings.ConsulService)
}

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func (r *registrar) acquire(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.client.AcquireMeta(cctx, r.s.hostname, r.s.Port(), r.s.settings.SyncPort)
	if err != nil {
		return err
	}
	if resp.Role != protocol.RoleMaster && resp.Role != protocol.RoleSlave {
		return &fatalError{fmt.Errorf("the metaserver registers %s:%d as %s of group %q; qmq broker runs real-time masters (--role=0) and slaves (--role=1): register it with one of those, or run the delay server or backup for that role",
			r.s.hostname, r.s.Port(), roleName(resp.Role), resp.GroupName)}
	}
	r.group, r.role, r.masterSync = resp.GroupName, resp.Role, resp.MasterAddress
	if resp.Role == protocol.RoleMaster { // a slave's row is asked for once it is promoted
		r.s.slaves.set(syncpeer.Row{Addr: resp.SlaveAddress, Known: resp.SlaveKnown})
	}
	ip := r.s.settings.AdvertiseIP
	if ip == "" {
		ip = outboundIP(r.addr)
	}
	r.brokerA = net.JoinHostPort(ip, strconv.Itoa(r.s.Port()))
	r.s.advertised.Store(&r.brokerA)
	return nil
}

// register sends one BROKER_REGISTER, dialing the metaserver if needed.
func (r *registrar) register(ctx context.Context, typ int32) error {
	if r.client == nil {
		if err := r.connect(ctx); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	answer, err := r.client.RegisterBrokerAnswer(cctx, protocol.BrokerRegisterRequest{
		RequestType: typ, GroupName: r.group, BrokerAddress: r.brokerA, Role: r.role, State: r.s.brokerState(),
	})
	if err == nil && answer.Known && typ != protocol.BrokerRequestOffline {
		r.noteReadonly(answer.ReadonlySubjects)
	}
	return err
}

// noteReadonly keeps what MarkReadonlyBrokerGroup says of this group, for
// /health, and logs a change: producers stop being sent here for those
// subjects, which an operator looking at the broker alone would not see.
func (r *registrar) noteReadonly(subjects []string) {
	old := r.s.markedReadonly.Swap(&subjects)
	if old == nil && len(subjects) == 0 || old != nil && slices.Equal(*old, subjects) {
		return
	}
	if len(subjects) == 0 {
		r.s.log.Info("no subject is marked read-only in this group any more (UnMarkReadonlyBrokerGroup)", "group", r.group)
		return
	}
	r.s.log.Info("subjects marked read-only in this group (MarkReadonlyBrokerGroup): the metaserver gives producers other groups for them",
		"group", r.group, "subjects", subjects)
}

// offline sends OFFLINE (3 tries) if the broker had registered ONLINE.
func (r *registrar) offline() {
	if r.group == "" || r.brokerA == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for i := 0; i < 3; i++ {
		if err = r.register(ctx, protocol.BrokerRequestOffline); err == nil {
			r.s.log.Info("broker offline", "group", r.group)
			r.close()
			return
		}
		r.close()
	}
	r.s.log.Warn("could not tell the metaserver this broker is going offline; its heartbeat timeout will mark it so", "error", explain(err))
}

// roleName is QMQ's name of a role.
func roleName(role int32) string { return protocol.RoleName(role) }

// outboundIP is the local IP used to reach target (no packet is sent).
func outboundIP(target string) string { return meta.OutboundIP(target) }
