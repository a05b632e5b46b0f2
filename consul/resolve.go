package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// Defaults used by Resolver when a field is empty.
const (
	DefaultDNSAddr    = "127.0.0.1:8600"
	DefaultHTTPAddr   = "127.0.0.1:8500"
	DefaultDomain     = "consul"
	DefaultDNSTimeout = 2 * time.Second
)

// Resolver finds healthy instances of a Consul service. The zero value is
// ready to use; a Resolver must not be copied after first use. It is safe for
// concurrent use.
type Resolver struct {
	DNSAddr  string // Consul DNS server, default "127.0.0.1:8600"
	HTTPAddr string // Consul HTTP API for fallback, default from CONSUL_HTTP_ADDR or "127.0.0.1:8500"
	Domain   string // default "consul"
	Logger   hclog.Logger
	// DNSTimeout bounds the whole DNS attempt (SRV query plus target
	// lookups) so that an unresponsive DNSAddr still leaves time for the
	// HTTP fallback. Default 2s.
	DNSTimeout time.Duration

	mu         sync.Mutex
	httpClient *api.Client
	httpFor    string // address httpClient was built for
	transport  *http.Transport
}

// Endpoint is one healthy service instance.
type Endpoint struct {
	Host string            // an IP or resolvable name
	Port int               // the registered service port
	Meta map[string]string // service metadata; nil when found through DNS
}

// Addr returns "host:port", ready for net.Dial or a URL.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (r *Resolver) logger() hclog.Logger {
	if r.Logger == nil {
		return hclog.NewNullLogger()
	}
	return r.Logger
}

func (r *Resolver) dnsAddr() string {
	if r.DNSAddr != "" {
		return r.DNSAddr
	}
	return DefaultDNSAddr
}

func (r *Resolver) httpAddr() string {
	if r.HTTPAddr != "" {
		return r.HTTPAddr
	}
	if a := os.Getenv(api.HTTPAddrEnvName); a != "" {
		return a
	}
	return DefaultHTTPAddr
}

func (r *Resolver) domain() string {
	d := strings.Trim(r.Domain, ".")
	if d == "" {
		return DefaultDomain
	}
	return d
}

// Resolve returns the healthy instances of service in random order. It
// queries Consul DNS for "<service>.service.<domain>." SRV records and falls
// back to the HTTP health API when DNS fails or returns nothing. The error,
// when both fail, names the service, both lookups and what to check.
func (r *Resolver) Resolve(ctx context.Context, service string) ([]Endpoint, error) {
	if service == "" {
		return nil, errors.New("resolve consul service: empty service name")
	}
	log := r.logger().With("service", service)

	eps, dnsErr := r.resolveDNS(ctx, service)
	if dnsErr == nil && len(eps) > 0 {
		log.Debug("resolved via consul DNS", "endpoints", len(eps))
		shuffle(eps)
		return eps, nil
	}
	if dnsErr == nil {
		dnsErr = errors.New("no healthy instances")
	}
	if ctx.Err() != nil {
		return nil, r.resolveError(service, dnsErr, fmt.Errorf("not tried: %w", ctx.Err()))
	}
	// A DNS "no such host" is Consul saying "no healthy instance", which the
	// HTTP API will most likely confirm; anything else means DNS is broken.
	level := hclog.Warn
	if de := (*net.DNSError)(nil); errors.As(dnsErr, &de) && de.IsNotFound {
		level = hclog.Debug
	}
	log.Log(level, "consul DNS lookup failed, falling back to the HTTP API",
		"dns", r.dnsAddr(), "error", dnsErr, "http", displayAddr(r.httpAddr()))

	eps, httpErr := r.resolveHTTP(ctx, service)
	if httpErr == nil && len(eps) > 0 {
		log.Debug("resolved via consul HTTP API", "endpoints", len(eps))
		shuffle(eps)
		return eps, nil
	}
	if httpErr == nil {
		httpErr = errors.New("no passing instances")
	}
	return nil, r.resolveError(service, dnsErr, httpErr)
}

// ResolveError is returned by Resolve when neither lookup found an instance.
type ResolveError struct {
	Service  string
	DNSQuery string // e.g. "qmq-metaserver.service.consul. SRV @127.0.0.1:8600"
	DNSErr   error
	HTTPURL  string // e.g. "http://127.0.0.1:8500/v1/health/service/qmq-metaserver?passing"
	HTTPErr  error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("resolve consul service %q: no healthy instance found; "+
		"DNS %s: %v; HTTP GET %s: %v; "+
		"check that %q is registered and its health check passes (consul catalog services; "+
		"curl the HTTP URL above) and that the resolver's DNS/HTTP addresses point at a Consul agent",
		e.Service, e.DNSQuery, e.DNSErr, e.HTTPURL, e.HTTPErr, e.Service)
}

// Unwrap exposes both lookup errors to errors.Is / errors.As.
func (e *ResolveError) Unwrap() []error { return []error{e.DNSErr, e.HTTPErr} }

func (r *Resolver) resolveError(service string, dnsErr, httpErr error) error {
	addr := r.httpAddr()
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &ResolveError{
		Service:  service,
		DNSQuery: fmt.Sprintf("%s SRV @%s", r.srvName(service), r.dnsAddr()),
		DNSErr:   dnsErr,
		HTTPURL:  fmt.Sprintf("%s/v1/health/service/%s?passing", strings.TrimSuffix(addr, "/"), service),
		HTTPErr:  httpErr,
	}
}

func (r *Resolver) srvName(service string) string {
	return service + ".service." + r.domain() + "."
}

// resolveDNS queries the SRV record and resolves each target through the same
// DNS server. Targets that do not resolve are skipped; if none resolves the
// first target error is returned.
func (r *Resolver) resolveDNS(ctx context.Context, service string) ([]Endpoint, error) {
	timeout := r.DNSTimeout
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dnsAddr := r.dnsAddr()
	res := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dnsAddr)
		},
	}
	_, srvs, err := res.LookupSRV(ctx, "", "", r.srvName(service))
	if err != nil {
		return nil, withServer(err, dnsAddr)
	}

	addrs := make(map[string]string) // target -> IP, one lookup per node
	var eps []Endpoint
	var firstErr error
	for _, srv := range srvs {
		ip, ok := addrs[srv.Target]
		if !ok {
			ip, err = lookupTarget(ctx, res, srv.Target)
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("SRV target %s: %w", srv.Target, withServer(err, dnsAddr))
				}
				continue
			}
			addrs[srv.Target] = ip
		}
		eps = append(eps, Endpoint{Host: ip, Port: int(srv.Port)})
	}
	if len(eps) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return eps, nil
}

// withServer fixes the Server of a *net.DNSError: with a custom Dial, Go
// reports the nameserver from /etc/resolv.conf it thinks it asked, not
// dnsAddr, which sends readers of the error to the wrong place.
func withServer(err error, dnsAddr string) error {
	var de *net.DNSError
	if errors.As(err, &de) && de.Server != dnsAddr {
		fixed := *de
		fixed.Server = dnsAddr
		return &fixed
	}
	return err
}

// lookupTarget resolves an SRV target to one IP, preferring IPv4.
func lookupTarget(ctx context.Context, res *net.Resolver, target string) (string, error) {
	ips, err := res.LookupNetIP(ctx, "ip", target)
	if err != nil {
		return "", err
	}
	if len(ips) == 0 {
		return "", errors.New("no addresses")
	}
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return best.Unmap().String(), nil
}

func (r *Resolver) client() (*api.Client, error) {
	addr := r.httpAddr()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpClient != nil && r.httpFor == addr {
		return r.httpClient, nil
	}
	c, tr, err := newAPIClient(addr, "")
	if err != nil {
		return nil, err
	}
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
	r.httpClient, r.httpFor, r.transport = c, addr, tr
	return c, nil
}

func (r *Resolver) resolveHTTP(ctx context.Context, service string) ([]Endpoint, error) {
	c, err := r.client()
	if err != nil {
		return nil, err
	}
	entries, _, err := c.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		reason, hint := explainHTTP(err, service, "service:read", resolverAddrHint)
		if hint != "" {
			reason += " (" + hint + ")"
		}
		return nil, &explainedError{msg: reason, err: err}
	}
	eps := make([]Endpoint, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		eps = append(eps, Endpoint{Host: host, Port: e.Service.Port, Meta: maps.Clone(e.Service.Meta)})
	}
	return eps, nil
}

func shuffle(eps []Endpoint) {
	rand.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
}
