package backup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/protocol"
)

// registrar asks the metaserver, every backup.meta.refresh.ms, which group
// this backup belongs to and which slave it follows (BROKER_ACQUIRE_META
// answers a BACKUP, role 4, with the group's slave's sync address), and
// sends a heartbeat (BROKER_REGISTER, role 4: acknowledged, as QMQ's
// metaserver does). After a failover the metaserver swaps the rows, so the
// next answer names the new slave and the follower switches to it.
type registrar struct {
	s         *Server
	client    *meta.Client
	metaAddr  string
	advertise string // ip:http port

	mu      sync.Mutex
	lastErr string

	consulSvc     *consul.Service
	consulFailing bool
	// consulDegraded: a refresh since the last registration found the
	// backup not ok, so its check may have been critical long enough
	// (consul.deregister.critical.after.ms) for the agent to remove it.
	consulDegraded bool
}

func (r *registrar) lastError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *registrar) setError(err error) {
	msg := ""
	if err != nil {
		msg = explain(err)
	}
	r.mu.Lock()
	changed := r.lastErr != msg
	r.lastErr = msg
	r.mu.Unlock()
	if changed && err != nil {
		r.s.log.Error("cannot learn this backup's group and slave from the metaserver; retrying every backup.meta.refresh.ms",
			"error", msg, "every", r.s.settings.MetaRefresh)
	}
}

// explain renders an error: the metaserver's own explanation when it refused.
func explain(err error) string {
	var me *meta.Error
	if errors.As(err, &me) {
		return me.Message
	}
	return err.Error()
}

func (r *registrar) run(ctx context.Context) {
	for {
		if err := r.once(ctx); err != nil && ctx.Err() == nil {
			r.setError(err)
			r.close()
			r.consulDegraded = true // /health says so
		} else if err == nil {
			r.setError(nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.s.settings.MetaRefresh):
		}
	}
}

func (r *registrar) once(ctx context.Context) error {
	s := r.s
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r.client == nil {
		addr, err := meta.Locate(ctx, s.settings.MetaEndpoint)
		if err != nil {
			return err
		}
		c, err := meta.Dial(ctx, addr)
		if err != nil {
			return err
		}
		r.client, r.metaAddr = c, addr
		r.advertise = net.JoinHostPort(meta.OutboundIP(addr), strconv.Itoa(s.HTTPAddr().(*net.TCPAddr).Port))
	}
	resp, err := r.client.AcquireMeta(ctx, s.hostname, s.settings.Port, 0)
	if err != nil {
		return err
	}
	if resp.Role != protocol.RoleBackup {
		return fmt.Errorf("the metaserver has %s:%d as %s of group %s, not as BACKUP (4): register the backup with qmq tools AddBroker --brokerGroup=%s --role=4 --hostname=%s --servePort=%d (broker.port in %s)",
			s.hostname, s.settings.Port, protocol.RoleName(resp.Role), resp.GroupName, resp.GroupName, s.hostname, s.settings.Port, FileBackup)
	}
	held := s.cpGroup
	if cur, _ := s.f.target(); cur.group != "" {
		held = cur.group // the row was moved to another group while running
	}
	if held != "" && held != resp.GroupName {
		err := fmt.Errorf("store.root %s holds the backup of group %s, but the metaserver names this backup's group %s; give this backup its own store.root (or delete %s to index group %s from scratch)",
			s.settings.StoreRoot, held, resp.GroupName, s.cp.path, resp.GroupName)
		select {
		case s.fatal <- err:
		default:
		}
		return err
	}
	s.f.setTarget(target{group: resp.GroupName, addr: resp.MasterAddress})
	// The heartbeat: QMQ's metaserver acknowledges a backup's and keeps no
	// state, so a failure only matters for the log.
	if err := r.client.RegisterBroker(ctx, protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestHeartbeat,
		GroupName: resp.GroupName, BrokerAddress: r.advertise, Role: protocol.RoleBackup, State: protocol.BrokerStateRW}); err != nil {
		s.log.Debug("backup heartbeat failed", "error", err)
	}
	r.tryConsul(ctx, resp.GroupName)
	return nil
}

func (r *registrar) close() {
	if r.client != nil {
		r.client.Close()
		r.client = nil
	}
}

// tryConsul registers the backup in Consul (ours) when configured:
// service consul.service.name (qmq-backup) at the HTTP port, tagged
// group:<group>, with an HTTP check on /health. A failure is logged once
// and retried at the next refresh; Consul is never needed to run.
//
// A backup degraded longer than consul.deregister.critical.after.ms is
// removed by the agent (its /health check is critical meanwhile); so after
// any degraded refresh, the first ok one registers again — idempotent by
// ID, nothing changes if the agent still had it.
func (r *registrar) tryConsul(ctx context.Context, group string) {
	s := r.s
	if s.settings.ConsulAddress == "" {
		return
	}
	if r.consulSvc != nil {
		if s.report().Status != "ok" {
			r.consulDegraded = true
			return
		}
		if !r.consulDegraded {
			return
		}
	}
	host, portStr, _ := net.SplitHostPort(r.advertise)
	port, _ := strconv.Atoi(portStr)
	reg := consul.Registration{
		Name: s.settings.ConsulService, ID: s.settings.ConsulService + "-" + host + "-" + portStr,
		Address: host, Port: port,
		Tags:                    []string{"qmq", "backup", "group:" + group},
		Meta:                    map[string]string{"group": group, "role": "backup", "hostname": s.hostname, "broker_port": strconv.Itoa(s.settings.Port)},
		CheckHTTP:               "http://" + r.advertise + "/health",
		DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter,
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var err error
	again := r.consulSvc != nil
	if again {
		err = r.consulSvc.Update(rctx, reg)
	} else {
		var svc *consul.Service
		if svc, err = consul.RegisterService(rctx, consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}, reg); err == nil {
			r.consulSvc = svc
		}
	}
	cancel()
	switch {
	case err == nil:
		r.consulFailing, r.consulDegraded = false, false
		if again {
			s.log.Info("registered in consul again after a degraded spell (the agent may have removed the backup meanwhile)", "service", s.settings.ConsulService, "address", r.advertise, "group", group)
		} else {
			s.log.Info("registered in consul", "service", s.settings.ConsulService, "address", r.advertise, "group", group)
		}
	case ctx.Err() != nil:
	case !r.consulFailing:
		r.consulFailing = true
		s.log.Error("consul registration failed; retrying every backup.meta.refresh.ms (the backup works without it)", "error", err)
	}
}

// shutdown deregisters from Consul and closes the metaserver connection.
func (r *registrar) shutdown() {
	r.close()
	if r.consulSvc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.consulSvc.Deregister(ctx); err != nil {
		r.s.log.Warn("consul deregistration failed; the agent removes the service once its check has been critical for consul.deregister.critical.after.ms", "error", err)
	}
}
