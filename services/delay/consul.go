package delay

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/protocol"
)

// consulRegistration is the delay server's Consul registration (ours), made
// when consul.address (or CONSUL_HTTP_ADDR) is set: service
// consul.service.name (qmq-delay) at the registered address, tagged
// group:<group> and role:delay_master or role:delay_slave, with a TCP check
// on broker.port, and meta http_port, the bound delay.http.port (absent
// when it is off), for the console's /health and /subjects. The ID is the
// address, not the role: a former master that
// rejoins as slave replaces its own entry instead of leaving a second
// "delay_master" listed beside the new one.
func (r *registrar) consulRegistration() (consul.Registration, error) {
	s := r.s
	host, portStr, err := net.SplitHostPort(r.brokerA)
	if err != nil {
		return consul.Registration{}, fmt.Errorf("delay server address %q: %w", r.brokerA, err)
	}
	port, _ := strconv.Atoi(portStr)
	role := "delay_master"
	if r.role == protocol.RoleDelaySlave {
		role = "delay_slave"
	}
	meta := map[string]string{"group": r.group, "role": role, "hostname": s.hostname,
		"sync_port": strconv.Itoa(s.settings.SyncPort)}
	if a, ok := s.HTTPAddr().(*net.TCPAddr); ok {
		meta[consul.MetaHTTPPort] = strconv.Itoa(a.Port)
	}
	return consul.Registration{
		Name:                    s.settings.ConsulService,
		ID:                      s.settings.ConsulService + "-" + host + "-" + portStr,
		Address:                 host,
		Port:                    port,
		Tags:                    []string{"qmq", "delay", "group:" + r.group, "role:" + role},
		Meta:                    meta,
		CheckTCP:                r.brokerA,
		DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter,
	}, nil
}

// tryConsul registers in Consul when configured, or updates the
// registration in place when the role changed (registration is idempotent
// by ID); a failure is logged once, then retried every heartbeat. Consul is
// optional for QMQ's own discovery: a failure never stops the server.
func (r *registrar) tryConsul(ctx context.Context) {
	s := r.s
	if s.settings.ConsulAddress == "" {
		return
	}
	reg, err := r.consulRegistration()
	if err == nil && r.consulSvc != nil && strings.Join(reg.Tags, ",") == r.consulTags {
		return
	}
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if r.consulSvc != nil {
			err = r.consulSvc.Update(rctx, reg)
		} else {
			cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
			r.consulSvc, err = consul.RegisterService(rctx, cfg, reg)
		}
		cancel()
	}
	switch {
	case err == nil:
		r.consulTags = strings.Join(reg.Tags, ",")
		s.log.Info("registered in consul", "service", s.settings.ConsulService, "address", r.brokerA, "group", r.group, "role", protocol.RoleName(r.role), "consul", s.settings.ConsulAddress)
		r.consulFailing = false
	case ctx.Err() != nil:
	case !r.consulFailing:
		r.consulFailing = true
		s.log.Error("consul registration failed; will retry every heartbeat (QMQ clients find delay servers through the metaserver and are not affected)",
			"consul", s.settings.ConsulAddress, "retry_in", s.settings.HeartbeatInterval, "error", err)
	}
}

// deregisterConsul removes the server from Consul at shutdown.
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
	r.consulSvc = nil
	r.s.log.Info("deregistered from consul", "service", r.s.settings.ConsulService)
}
