package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Health check timing used for Registration.CheckHTTP.
const (
	CheckInterval                  = "5s"
	CheckTimeout                   = "2s"
	DeregisterCriticalServiceAfter = "1m"
)

// Registration describes one instance of a qmq component.
type Registration struct {
	Name      string            // service name, e.g. "qmq-metaserver"; required
	ID        string            // instance ID; default Name-host-port (host = Address, else os.Hostname)
	Address   string            // advertised IP; empty lets Consul use the agent's address
	Port      int               // the HTTP port (metaserver: meta.server.discover.port); required
	Tags      []string          // optional
	Meta      map[string]string // e.g. {"tcp_port": "20880"}; only visible through the HTTP API
	CheckHTTP string            // URL of /health; empty registers no check
}

// serviceID returns r.ID or the default Name-host-port.
func (r Registration) serviceID() string {
	if r.ID != "" {
		return r.ID
	}
	host := r.Address
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "unknown"
	}
	return r.Name + "-" + host + "-" + strconv.Itoa(r.Port)
}

func (r Registration) validate() error {
	if r.Name == "" {
		return errors.New("Registration.Name is empty")
	}
	if r.Port <= 0 || r.Port > 65535 {
		return fmt.Errorf("Registration.Port %d is not a valid port", r.Port)
	}
	return nil
}

func (r Registration) agentRegistration() *api.AgentServiceRegistration {
	reg := &api.AgentServiceRegistration{
		ID:      r.serviceID(),
		Name:    r.Name,
		Address: r.Address,
		Port:    r.Port,
		Tags:    slices.Clone(r.Tags),
		Meta:    maps.Clone(r.Meta),
	}
	if r.CheckHTTP != "" {
		reg.Check = &api.AgentServiceCheck{
			CheckID:                        "service:" + reg.ID + ":http",
			Name:                           r.Name + " HTTP health",
			HTTP:                           r.CheckHTTP,
			Method:                         "GET",
			Interval:                       CheckInterval,
			Timeout:                        CheckTimeout,
			DeregisterCriticalServiceAfter: DeregisterCriticalServiceAfter,
		}
	}
	return reg
}

// Register registers the service with the agent at cfg.Address and returns a
// function that deregisters it. The deregister function is safe to call more
// than once and from several goroutines: once it has succeeded, later calls
// return nil; after a failure (e.g. ctx expired) a later call retries. A
// service the agent no longer knows counts as deregistered.
//
// Registration replaces any existing checks of the same service ID, so a
// restarted instance with the same ID does not accumulate checks.
func Register(ctx context.Context, cfg Config, r Registration) (deregister func(context.Context) error, err error) {
	log := cfg.logger()
	addr, err := cfg.address()
	if err != nil {
		return nil, newError("register", r.Name, "", err, "")
	}
	if err := r.validate(); err != nil {
		return nil, &Error{Op: "register", Service: r.Name, Addr: displayAddr(addr),
			Reason: err.Error(), Hint: "fix the registration", Err: err}
	}
	client, transport, err := newAPIClient(addr, cfg.Token)
	if err != nil {
		return nil, &Error{Op: "register", Service: r.Name, Addr: displayAddr(addr),
			Reason: "invalid client configuration: " + err.Error(), Hint: registerAddrHint, Err: err}
	}

	reg := r.agentRegistration()
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		transport.CloseIdleConnections()
		return nil, newError("register", r.Name, addr, err, "service:write")
	}
	log.Info("registered service with consul", "service", r.Name, "id", reg.ID,
		"address", r.Address, "port", r.Port, "check", r.CheckHTTP, "consul", displayAddr(addr))

	var (
		mu   sync.Mutex
		done bool
	)
	deregister = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return nil
		}
		q := (&api.QueryOptions{}).WithContext(ctx)
		err := client.Agent().ServiceDeregisterOpts(reg.ID, q)
		var statusErr api.StatusError
		if errors.As(err, &statusErr) && statusErr.Code == 404 {
			err = nil // already gone (agent restarted, or reaped after DeregisterCriticalServiceAfter)
		}
		if err != nil {
			return newError("deregister", r.Name, addr, err, "service:write")
		}
		done = true
		transport.CloseIdleConnections()
		log.Info("deregistered service from consul", "service", r.Name, "id", reg.ID)
		return nil
	}
	return deregister, nil
}

func newError(op, service, addr string, err error, perm string) *Error {
	reason, hint := explainHTTP(err, service, perm, registerAddrHint)
	return &Error{Op: op, Service: service, Addr: displayAddr(addr), Reason: reason, Hint: hint, Err: err}
}
