package delay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
)

// registrar talks to the metaserver as QMQ's delay server does
// (BrokerRegisterService): BROKER_ACQUIRE_META, then ONLINE as
// DELAY_MASTER and a HEARTBEAT every broker.heartbeat.interval.ms, and
// OFFLINE at shutdown.
type registrar struct {
	s       *Server
	master  chan struct{} // closed once the role is DELAY_MASTER
	client  *meta.Client
	addr    string // metaserver TCP address of client
	group   string
	brokerA string // the address registered for producers

	consulSvc     *consul.Service
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
	s.role.Store(protocol.RoleDelayMaster)
	s.log.Info("delay server meta acquired", "group", r.group, "role", protocol.RoleName(protocol.RoleDelayMaster), "metaserver", r.addr, "address", r.brokerA)
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
	s.log.Info("delay server online: producers' delay messages are taken", "group", r.group, "address", r.brokerA)
	r.tryConsul(ctx)

	failing := false
	t := time.NewTicker(s.settings.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r.tryConsul(ctx)
		s.recheckDisk()
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

// acquire asks the metaserver which group and role this server has. Only
// DELAY_MASTER is served: a DELAY_SLAVE answer stops the server, since
// replication of the delay server is not implemented yet.
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
	case protocol.RoleDelaySlave:
		return &fatalError{fmt.Errorf("the metaserver registers %s:%d as DELAY_SLAVE of delay group %q, but replication of the delay server is not implemented yet, so a delay slave cannot run; "+
			"run it as the DELAY_MASTER of a delay group of its own instead: register it with qmq tools AddBroker --role=5 --brokerGroup=<new group> --hostname=%s and a broker.port not registered yet, and start it with that broker.port "+
			"(the DELAY_SLAVE row does no harm: the metaserver never gives slaves to producers)",
			s.hostname, s.Port(), resp.GroupName, s.hostname)}
	default:
		return &fatalError{fmt.Errorf("the metaserver registers %s:%d as %s of group %q; qmq delay runs delay masters (--role=5): register it with that role, or run qmq broker for a real-time role",
			s.hostname, s.Port(), protocol.RoleName(resp.Role), resp.GroupName)}
	}
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

// offline sends OFFLINE (3 tries) if the server had a group.
func (r *registrar) offline() {
	if r.group == "" || r.brokerA == "" {
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
