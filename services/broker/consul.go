package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/consul"
)

// registerConsul registers this broker in Consul (ours) when consul.address
// (or CONSUL_HTTP_ADDR) is set: service consul.service.name (qmq-broker) at
// the registered broker address, tagged group:<group> and role:<role>, with
// a TCP check on broker.port (the broker serves no HTTP). It returns the
// function that deregisters it. Consul is optional for QMQ's own discovery,
// so the registrar logs failures and tries again; they never stop the broker.
func (r *registrar) registerConsul(ctx context.Context) (func(context.Context) error, error) {
	s := r.s
	host, portStr, err := net.SplitHostPort(r.brokerA)
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", r.brokerA, err)
	}
	port, _ := strconv.Atoi(portStr)
	role := strings.ToLower(roleName(r.role))
	reg := consul.Registration{
		Name:    s.settings.ConsulService,
		ID:      s.settings.ConsulService + "-" + host + "-" + portStr,
		Address: host,
		Port:    port,
		Tags:    []string{"qmq", "broker", "group:" + r.group, "role:" + role},
		Meta:    map[string]string{"group": r.group, "role": role, "hostname": s.hostname, "sync_port": strconv.Itoa(s.settings.SyncPort)},
	}
	cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dereg, err := consul.Register(rctx, cfg, reg)
	if err != nil {
		return nil, err
	}
	// consul.Registration carries HTTP checks only: attach a TCP check on
	// broker.port to the service. It goes with the service on deregistration.
	if err := addTCPCheck(rctx, s.settings.ConsulAddress, s.settings.ConsulToken, reg.ID, reg.Name, r.brokerA); err != nil {
		_ = dereg(rctx)
		return nil, err
	}
	return dereg, nil
}

// addTCPCheck adds a TCP check of addr to the agent's service serviceID.
func addTCPCheck(ctx context.Context, agentAddr, token, serviceID, name, addr string) error {
	cfg := api.DefaultConfig()
	if agentAddr != "" {
		cfg.Address = agentAddr
	}
	if token != "" {
		cfg.Token = token
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("consul client for %s: %w", cfg.Address, err)
	}
	defer cfg.Transport.CloseIdleConnections()
	check := &api.AgentCheckRegistration{
		ID:        "service:" + serviceID + ":tcp",
		Name:      name + " TCP (broker.port)",
		ServiceID: serviceID,
		AgentServiceCheck: api.AgentServiceCheck{
			TCP:                            addr,
			Interval:                       consul.CheckInterval,
			Timeout:                        consul.CheckTimeout,
			DeregisterCriticalServiceAfter: consul.DeregisterCriticalServiceAfter,
		},
	}
	if err := client.Agent().CheckRegisterOpts(check, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("add a TCP check of %s to consul service %s at %s: %w (the ACL token needs service:write)", addr, serviceID, cfg.Address, err)
	}
	return nil
}
