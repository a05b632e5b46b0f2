package delay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/syncpeer"
)

// registrar talks to the metaserver as QMQ's delay server does
// (BrokerRegisterService): BROKER_ACQUIRE_META, then, as DELAY_MASTER,
// ONLINE and a HEARTBEAT every broker.heartbeat.interval.ms, and OFFLINE
// at shutdown. A DELAY_SLAVE copies its master and registers nothing.
// Both ask for their role again every interval: a role the metaserver
// changed (SwapMasterSlave, the manual failover) stops the server, so that
// its supervisor starts it again in the new role (failover.go).
type registrar struct {
	s          *Server
	master     chan struct{} // closed once the role is DELAY_MASTER
	client     *meta.Client
	addr       string // metaserver TCP address of client
	group      string
	role       int32
	masterSync string      // a slave's master's ip:sync.port
	brokerA    string      // the address registered for producers
	wentOnline bool        // ONLINE was acknowledged: OFFLINE at shutdown
	epoch      int64       // the master lease's term (0: none)
	demoted    atomic.Bool // the metaserver gave the role away: no OFFLINE (it would mark the new master's group)
	takingOver atomic.Bool // watchMaster is asking to take over: a role change seen meanwhile is its own

	consulSvc     *consul.Service
	consulTags    string // the tags last registered (a change is updated in place)
	consulFailing bool
}

// connect locates the metaserver and dials it (closing any previous connection).
func (r *registrar) connect(ctx context.Context) error {
	r.close()
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
	return nil
}

func (r *registrar) close() {
	if r.client != nil {
		r.client.Close()
		r.client = nil
	}
}

// explain renders an error for a log line: the metaserver's own
// explanation when it refused.
func explain(err error) string {
	var me *meta.Error
	if errors.As(err, &me) {
		return me.Message
	}
	return err.Error()
}

// fatalError stops the delay server: retrying cannot help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// run acquires the server's group and role (retrying), registers ONLINE and
// heartbeats until ctx ends. It returns an error only when the server must stop.
func (r *registrar) run(ctx context.Context) error {
	defer r.close()
	defer r.deregisterConsul()
	s := r.s
	// Servers restarted together spread their attempts over the second half
	// of the interval.
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
		s.log.Error("cannot get this delay server's group and role from the metaserver; retrying (is it registered? qmq tools AddBroker --role=5 with this hostname and broker.port)",
			"attempt", attempt, "retry_in", wait, "hostname", s.hostname, "port", s.Port(), "error", explain(err))
		r.close()
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
	s.group.Store(&r.group)
	s.log.Info("delay server meta acquired", "group", r.group, "role", protocol.RoleName(r.role), "metaserver", r.addr, "address", r.brokerA)
	if r.role == protocol.RoleDelaySlave {
		var fatal *fatalError
		if err := r.checkRejoin(ctx); errors.As(err, &fatal) {
			return fatal.err
		} else if err != nil {
			return err // a rejoinCut: Run cuts the tail
		}
	}
	rep, err := s.startReplica(ctx, r.role, r.masterSync)
	if err != nil {
		return err
	}
	s.replica.Store(rep)
	s.role.Store(r.role)
	if r.role == protocol.RoleDelaySlave {
		return r.followAsSlave(ctx)
	}
	var leaseLost chan error // nil without failover: never ready
	if s.settings.Failover.Enable {
		// The lease before dispatching or taking sends: a slave that took
		// over may still hold it.
		if err := r.claimAtStart(ctx); err != nil || ctx.Err() != nil {
			return err
		}
		lctx, stopLease := context.WithCancel(ctx)
		leaseLost = make(chan error, 1)
		var renewer sync.WaitGroup
		renewer.Go(func() { leaseLost <- r.renewLease(lctx) })
		defer func() { stopLease(); renewer.Wait() }()
	} else {
		r.recordTerm(ctx) // rejoin.go
	}
	s.recordMasterTerm(r.group, r.epoch)
	close(r.master)

	for attempt := 1; ; attempt++ {
		err := r.register(ctx, protocol.BrokerRequestOnline)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := retry.Next()
		s.log.Error("ONLINE registration failed; retrying", "attempt", attempt, "retry_in", wait, "error", explain(err))
		r.close()
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
	s.online.Store(true)
	r.wentOnline = true
	s.log.Info("delay server online: producers' delay messages are taken", "group", r.group, "address", r.brokerA)
	r.tryConsul(ctx)

	failing := false
	t := time.NewTicker(s.settings.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-leaseLost:
			if err != nil {
				return r.cutOnDemotion(ctx, err)
			}
			leaseLost = nil
			continue
		case <-t.C:
		}
		r.tryConsul(ctx)
		s.recheckDisk()
		if err := r.checkRole(ctx); err != nil {
			if r.demoted.Load() {
				return r.cutOnDemotion(ctx, err)
			}
			return err
		}
		err := r.register(ctx, protocol.BrokerRequestHeartbeat)
		switch {
		case err == nil && failing:
			s.log.Info("heartbeats to the metaserver work again", "metaserver", r.addr)
			failing = false
		case err != nil && ctx.Err() == nil:
			if !failing {
				s.log.Warn("heartbeat to the metaserver failed; will locate it again and keep trying", "error", explain(err))
			}
			failing = true
			r.close()
		}
	}
}

// acquire asks the metaserver which group and role this server has:
// DELAY_MASTER or DELAY_SLAVE (with its master's sync address).
func (r *registrar) acquire(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := r.s
	resp, err := r.client.AcquireMeta(cctx, s.hostname, s.Port(), s.settings.SyncPort)
	if err != nil {
		return err
	}
	switch resp.Role {
	case protocol.RoleDelayMaster:
		s.slaves.set(syncpeer.Row{Addr: resp.SlaveAddress, Known: resp.SlaveKnown})
	case protocol.RoleDelaySlave:
		if resp.MasterAddress == "" {
			return fmt.Errorf("the metaserver registers %s:%d as DELAY_SLAVE of delay group %q but names no master sync address", s.hostname, s.Port(), resp.GroupName)
		}
	default:
		return &fatalError{fmt.Errorf("the metaserver registers %s:%d as %s of group %q; qmq delay runs delay masters (--role=5) and delay slaves (--role=6): register it with one of those, or run qmq broker for a real-time role",
			s.hostname, s.Port(), protocol.RoleName(resp.Role), resp.GroupName)}
	}
	r.role, r.masterSync = resp.Role, resp.MasterAddress
	r.group = resp.GroupName
	ip := s.settings.AdvertiseIP
	if ip == "" {
		ip = meta.OutboundIP(r.addr)
	}
	r.brokerA = net.JoinHostPort(ip, strconv.Itoa(s.Port()))
	s.advertised.Store(&r.brokerA)
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
	return r.client.RegisterBroker(cctx, protocol.BrokerRegisterRequest{
		RequestType: typ, GroupName: r.group, BrokerAddress: r.brokerA, Role: protocol.RoleDelayMaster, State: r.s.brokerState(),
	})
}

// offline sends OFFLINE (3 tries) if the server went online as master and
// still is the master.
func (r *registrar) offline() {
	if r.group == "" || r.brokerA == "" || !r.wentOnline || r.demoted.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for range 3 {
		if err = r.register(ctx, protocol.BrokerRequestOffline); err == nil {
			r.s.log.Info("delay server offline", "group", r.group)
			r.close()
			return
		}
		r.close()
	}
	r.s.log.Warn("could not tell the metaserver this delay server is going offline; its heartbeat timeout will mark it so", "error", explain(err))
}
