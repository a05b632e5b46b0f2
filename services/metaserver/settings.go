package metaserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Settings are the metaserver's static configuration: everything New needs
// besides the hot-reloadable Dynamic, read once at start-up (changing them
// needs a restart). Build them in code from DefaultSettings, or from a QMQ
// conf directory with LoadSettings; New checks them with Validate. Each
// field names the key it is read from.
type Settings struct {
	DiscoverPort  int           // meta.server.discover.port: HTTP; 0 = a free port
	ServerPort    int           // meta.server.port: TCP; 0 = a free port
	BindHost      string        // meta.server.bind.host (ours): "" = all interfaces
	AdvertiseIP   string        // meta.server.advertise.ip (ours): IP put in /meta/address; "" = the IP the caller reached
	RefreshPeriod time.Duration // refresh.period.seconds
	LoadBalance   string        // meta.server.load.balance: only "random"
	StoreRoot     string        // store.root (ours): where the embedded SQLite file lives
	MaxFrameSize  int           // max.frame.size (ours)

	ConsulAddress string // consul.address (ours); "" = CONSUL_HTTP_ADDR; both empty = no registration
	ConsulToken   string // consul.token (ours)
	ConsulService string // consul.service.name (ours), default qmq-metaserver
	// ConsulDeregisterAfter is consul.deregister.critical.after.ms (ours): the
	// agent removes the registration once its check is critical this long.
	ConsulDeregisterAfter time.Duration

	JDBCURL      string // datasource.properties jdbc.url; "" = embedded SQLite
	JDBCUser     string // datasource.properties jdbc.username
	JDBCPassword string // datasource.properties jdbc.password
	PoolSizeMax  int    // datasource.properties pool.size.max

	// DelayAdminSecret is delay.admin.secret or delay.admin.secret.file
	// (ours): the CancelDelay action signs its requests to the delay masters
	// with it (canceldelay.go); none = CancelDelay is refused.
	DelayAdminSecret delayadmin.Secret

	// Limits are max.connections, tcp.idle.timeout.ms, frame.read.timeout.ms,
	// frame.memory.budget.bytes and http.max.connections (ours).
	Limits netlimits.Settings
}

// The bounds of the static settings, shared by the loader (which documents
// them, see KnownKeys) and Validate (which holds Settings built in code to
// them).
const (
	minRefreshPeriod = time.Second
	maxRefreshPeriod = time.Hour
	minMaxFrameSize  = 1 << 10
	maxMaxFrameSize  = 1 << 30
	maxConsulDereg   = 7 * 24 * time.Hour
	maxPoolSize      = 1000
	loadBalanceRand  = "random"
)

// DefaultSettings are the built-in defaults: QMQ's ports (8080 HTTP, 20880
// TCP), the embedded SQLite store under ./data, no Consul. LoadSettings
// starts from them, so they are also what an empty conf directory means.
func DefaultSettings() Settings {
	s := Settings{
		DiscoverPort:          8080,
		ServerPort:            20880,
		RefreshPeriod:         5 * time.Second,
		LoadBalance:           loadBalanceRand,
		StoreRoot:             "./data",
		MaxFrameSize:          16 << 20,
		ConsulService:         "qmq-metaserver",
		ConsulDeregisterAfter: consul.DefaultDeregisterCriticalAfter,
		PoolSizeMax:           10,
	}
	s.Limits = netlimits.DefaultSettings(s.MaxFrameSize)
	return s
}

// Validate checks what key parsing alone cannot: settings built in code are
// held to the ranges the loader enforces, and fields that only make sense
// together are checked together. Every problem is reported, one line each,
// naming the key, its value and what to do.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, p := range []struct {
		key  string
		port int
	}{{"meta.server.discover.port", s.DiscoverPort}, {"meta.server.port", s.ServerPort}} {
		if p.port < 0 || p.port > 65535 {
			bad("%s=%d is not a port: want 0 (any free port) to 65535", p.key, p.port)
		}
	}
	if s.DiscoverPort == s.ServerPort && s.ServerPort != 0 {
		bad("meta.server.discover.port and meta.server.port are both %d; the HTTP and TCP ports must differ (QMQ defaults: 8080 and 20880)", s.ServerPort)
	}
	if s.RefreshPeriod < minRefreshPeriod || s.RefreshPeriod > maxRefreshPeriod {
		bad("refresh.period.seconds=%v is out of range: want %v to %v (default 5 s)", s.RefreshPeriod, minRefreshPeriod, maxRefreshPeriod)
	}
	if s.LoadBalance != loadBalanceRand {
		bad("meta.server.load.balance=%q is not supported: the only balance is %q", s.LoadBalance, loadBalanceRand)
	}
	if s.MaxFrameSize < minMaxFrameSize || s.MaxFrameSize > maxMaxFrameSize {
		bad("max.frame.size=%d is out of range: want %d to %d bytes (default 16 MiB)", s.MaxFrameSize, minMaxFrameSize, maxMaxFrameSize)
	}
	errs = append(errs, s.validateStore()...)
	errs = append(errs, s.validateConsul()...)
	errs = append(errs, s.Limits.Validate(s.MaxFrameSize)...)
	return errors.Join(errs...)
}

// validateStore checks the store settings: a SQLite directory, or a JDBC
// URL the MySQL driver can use.
func (s Settings) validateStore() []error {
	var errs []error
	if s.JDBCURL == "" {
		if s.StoreRoot == "" {
			errs = append(errs, errors.New("store.root is empty and there is no jdbc.url: set store.root to the directory of the embedded SQLite store (default ./data), or jdbc.url in datasource.properties to use MySQL"))
		}
		return errs
	}
	if _, _, err := store.DSNFromJDBC(s.JDBCURL, s.JDBCUser, s.JDBCPassword); err != nil {
		errs = append(errs, fmt.Errorf("jdbc.url (datasource.properties): %w", err))
	}
	if s.PoolSizeMax < 1 || s.PoolSizeMax > maxPoolSize {
		errs = append(errs, fmt.Errorf("pool.size.max=%d is out of range: want 1 to %d (default 10)", s.PoolSizeMax, maxPoolSize))
	}
	return errs
}

// validateConsul checks the Consul registration, when there is one.
func (s Settings) validateConsul() []error {
	if s.ConsulAddress == "" {
		return nil
	}
	var errs []error
	if _, p, err := net.SplitHostPort(s.ConsulAddress); err != nil || p == "" {
		errs = append(errs, fmt.Errorf("consul.address=%q is not host:port: give the agent's HTTP address, e.g. 127.0.0.1:8500", s.ConsulAddress))
	}
	if s.ConsulService == "" {
		errs = append(errs, errors.New("consul.service.name is empty: name the service to register (default qmq-metaserver)"))
	}
	if s.ConsulDeregisterAfter < consul.MinDeregisterCriticalAfter || s.ConsulDeregisterAfter > maxConsulDereg {
		errs = append(errs, fmt.Errorf("consul.deregister.critical.after.ms=%d is out of range: want %d (Consul's minimum) to %d",
			s.ConsulDeregisterAfter.Milliseconds(), consul.MinDeregisterCriticalAfter.Milliseconds(), maxConsulDereg.Milliseconds()))
	}
	return errs
}
