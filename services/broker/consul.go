package broker

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

// consulRegistration is this broker's Consul registration (ours), made when
// consul.address (or CONSUL_HTTP_ADDR) is set: service consul.service.name
// (qmq-broker) at the registered broker address, tagged group:<group>,
// role:<role> and, while its lagging slave makes the group read-only,
// readonly; with a TCP check on broker.port (the broker's HTTP port is
// optional). Meta http_port is the bound broker.http.port (absent when it
// is off): the console finds /health and /consumers through it, the
// metaserver's broker table knowing only the serve and sync ports.
// A check critical for consul.deregister.critical.after.ms
// makes the agent remove the registration: a killed broker does not stay
// listed, with its last role, forever.
func (r *registrar) consulRegistration() (consul.Registration, error) {
	s := r.s
	host, portStr, err := net.SplitHostPort(r.brokerA)
	if err != nil {
		return consul.Registration{}, fmt.Errorf("broker address %q: %w", r.brokerA, err)
	}
	port, _ := strconv.Atoi(portStr)
	role := strings.ToLower(roleName(r.role))
	state := "RW"
	tags := []string{"qmq", "broker", "group:" + r.group, "role:" + role}
	if s.brokerState() == protocol.BrokerStateR {
		state = "R"
		tags = append(tags, "readonly")
	}
	meta := map[string]string{"group": r.group, "role": role, "state": state, "hostname": s.hostname,
		"sync_port": strconv.Itoa(s.settings.SyncPort)}
	if a, ok := s.HTTPAddr().(*net.TCPAddr); ok {
		meta[consul.MetaHTTPPort] = strconv.Itoa(a.Port)
	}
	return consul.Registration{
		Name:                    s.settings.ConsulService,
		ID:                      s.settings.ConsulService + "-" + host + "-" + portStr,
		Address:                 host,
		Port:                    port,
		Tags:                    tags,
		Meta:                    meta,
		CheckTCP:                r.brokerA,
		DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter,
	}, nil
}

// syncConsul registers the broker in Consul, or updates the registration in
// place when its tags have changed (a promoted slave, a group turned
// read-only or writable again): Consul's registration is idempotent by ID,
// so the service never disappears in between. Consul is optional for QMQ's
// own discovery, so failures are returned for the caller to log and retry;
// they never stop the broker.
func (r *registrar) syncConsul(ctx context.Context) (changed bool, err error) {
	reg, err := r.consulRegistration()
	if err != nil {
		return false, err
	}
	key := strings.Join(reg.Tags, ",")
	if r.consulSvc != nil && key == r.consulTags {
		return false, nil
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if r.consulSvc != nil {
		if err := r.consulSvc.Update(rctx, reg); err != nil {
			return false, err
		}
	} else {
		s := r.s
		cfg := consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}
		if r.consulSvc, err = consul.RegisterService(rctx, cfg, reg); err != nil {
			return false, err
		}
	}
	r.consulTags = key
	return true, nil
}
