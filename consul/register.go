package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Health check timing used for Registration.CheckHTTP and CheckTCP.
const (
	CheckInterval = "5s"
	CheckTimeout  = "2s"
)

// A service whose check stays critical this long is removed by its agent
// (Consul's DeregisterCriticalServiceAfter): a killed instance does not stay
// in the catalog, critical and with its last tags (role:master), forever.
const (
	// DefaultDeregisterCriticalAfter is the default of
	// consul.deregister.critical.after.ms.
	DefaultDeregisterCriticalAfter = 3 * time.Minute
	// MinDeregisterCriticalAfter is Consul's minimum (shorter values are
	// raised by the agent); its reaper then runs every 30 s.
	MinDeregisterCriticalAfter = time.Minute
)

// DeregisterAfter renders d for DeregisterCriticalServiceAfter: 0 means
// DefaultDeregisterCriticalAfter, and values below Consul's minimum are
// raised to it (as the agent would).
func DeregisterAfter(d time.Duration) string {
	if d == 0 {
		d = DefaultDeregisterCriticalAfter
	}
	return max(d, MinDeregisterCriticalAfter).String()
}

// MetaHTTPPort is the Registration.Meta key under which brokers and delay
// servers give their HTTP port (broker.http.port, delay.http.port): the
// metaserver's broker table has only their serve and sync ports, and the
// console reads /health, /consumers and /subjects on the HTTP one.
const MetaHTTPPort = "http_port"

// Registration describes one instance of a qmq component.
type Registration struct {
	Name      string            // service name, e.g. "qmq-metaserver"; required
	ID        string            // instance ID; default Name-host-port (host = Address, else os.Hostname)
	Address   string            // advertised IP; empty lets Consul use the agent's address
	Port      int               // the HTTP port (metaserver: meta.server.discover.port); required
	Tags      []string          // optional
	Meta      map[string]string // e.g. {"tcp_port": "20880"}; only visible through the HTTP API
	CheckHTTP string            // URL of /health; empty registers no HTTP check
	CheckTCP  string            // host:port to connect to; empty registers no TCP check
	// DeregisterCriticalAfter removes the service once a check has been
	// critical this long; 0 = DefaultDeregisterCriticalAfter.
	DeregisterCriticalAfter time.Duration
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
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{
			CheckID:                        "service:" + reg.ID + ":http",
			Name:                           r.Name + " HTTP health",
			HTTP:                           r.CheckHTTP,
			Method:                         "GET",
			Interval:                       CheckInterval,
			Timeout:                        CheckTimeout,
			DeregisterCriticalServiceAfter: DeregisterAfter(r.DeregisterCriticalAfter),
		})
	}
	if r.CheckTCP != "" {
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{
			CheckID:                        "service:" + reg.ID + ":tcp",
			Name:                           r.Name + " TCP",
			TCP:                            r.CheckTCP,
			Interval:                       CheckInterval,
			Timeout:                        CheckTimeout,
			DeregisterCriticalServiceAfter: DeregisterAfter(r.DeregisterCriticalAfter),
		})
	}
	return reg
}

// Service is a registration held with an agent: Update changes it (new
// tags after a role change), Deregister removes it. Its methods are safe for
// concurrent use.
type Service struct {
	cfg       Config
	addr      string
	client    *api.Client
	transport *http.Transport

	mu   sync.Mutex
	reg  Registration
	id   string
	done bool
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
	s, err := RegisterService(ctx, cfg, r)
	if err != nil {
		return nil, err
	}
	return s.Deregister, nil
}

// RegisterService is Register, returning the Service so that it can be
// updated in place.
func RegisterService(ctx context.Context, cfg Config, r Registration) (*Service, error) {
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
	s := &Service{cfg: cfg, addr: addr, client: client, transport: transport, id: r.serviceID()}
	if err := s.register(ctx, r); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

// register sends r to the agent. The agent's registration is idempotent by
// ID: the same ID replaces the service's tags, meta and checks, and checks
// that keep their ID keep their status (no critical blip on an update).
func (s *Service) register(ctx context.Context, r Registration) error {
	reg := r.agentRegistration()
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := s.client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return newError("register", r.Name, s.addr, err, "service:write")
	}
	s.reg = r
	s.cfg.logger().Info("registered service with consul", "service", r.Name, "id", reg.ID, "tags", r.Tags,
		"address", r.Address, "port", r.Port, "checks", r.checkSummary(), "consul", displayAddr(s.addr))
	return nil
}

// checkSummary names the registration's checks by kind for the log, e.g.
// "tcp 10.0.0.1:20881 every 5s": an operator reading it knows what the agent
// probes, and a bare host:port is not mistaken for an HTTP URL.
func (r Registration) checkSummary() string {
	var checks []string
	if r.CheckHTTP != "" {
		checks = append(checks, "http GET "+r.CheckHTTP+" every "+CheckInterval)
	}
	if r.CheckTCP != "" {
		checks = append(checks, "tcp "+r.CheckTCP+" every "+CheckInterval)
	}
	if len(checks) == 0 {
		return "none"
	}
	return strings.Join(checks, ", ")
}

// Update registers r in place of the current registration (same service ID
// required): e.g. new tags when an instance's role changes.
func (s *Service) Update(ctx context.Context, r Registration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := r.serviceID(); id != s.id {
		return fmt.Errorf("consul: update of service %s with a registration for %s: the ID must stay the same", s.id, id)
	}
	s.done = false
	return s.register(ctx, r)
}

// ID is the service's ID in the agent.
func (s *Service) ID() string { return s.id }

// Deregister removes the service (see Register for its guarantees).
func (s *Service) Deregister(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	err := s.client.Agent().ServiceDeregisterOpts(s.id, q)
	var statusErr api.StatusError
	if errors.As(err, &statusErr) && statusErr.Code == 404 {
		err = nil // already gone (agent restarted, or reaped after DeregisterCriticalServiceAfter)
	}
	if err != nil {
		return newError("deregister", s.reg.Name, s.addr, err, "service:write")
	}
	s.done = true
	s.transport.CloseIdleConnections()
	s.cfg.logger().Info("deregistered service from consul", "service", s.reg.Name, "id", s.id)
	return nil
}

func newError(op, service, addr string, err error, perm string) *Error {
	reason, hint := explainHTTP(err, service, perm, registerAddrHint)
	return &Error{Op: op, Service: service, Addr: displayAddr(addr), Reason: reason, Hint: hint, Err: err}
}
