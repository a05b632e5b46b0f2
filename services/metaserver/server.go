package metaserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Options configure a metaserver.
type Options struct {
	ConfDir   string // --conf
	Overrides conf.Overrides
	Env       func(string) (string, bool) // nil = os.LookupEnv
	Logger    hclog.Logger
	// ConfigPollInterval is how often config files are checked for changes (QMQ: 10 s).
	ConfigPollInterval time.Duration
}

// sampleToken is the token printed in QMQ's install guide (and our sample config).
const sampleToken = "9p4lGl8JoTH9GhemH9QFtfVmmRj!DR@OjIcYyqoDN8MLSY!6Fx6twXoZL0K3tV11"

// Server is a running metaserver. Create it with New, run it with Run.
type Server struct {
	opts     Options
	lookup   conf.Lookup
	log      hclog.Logger
	settings Settings
	dyn      atomic.Pointer[Dynamic]
	// keyWarnings are the unknown keys last warned about (Reload warns
	// about new ones only).
	keyMu       sync.Mutex
	keyWarnings map[string]bool
	store       store.Store
	cache       *cache
	heartbeats  *heartbeats
	m           *metrics

	httpLn *httpguard.Listener
	http   *http.Server
	tcp    *remoting.Server
}

// New loads the configuration, opens the store and binds both ports. Every
// configuration or store problem is returned before anything listens.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "metaserver"})
	}
	if opts.ConfigPollInterval == 0 {
		opts.ConfigPollInterval = 10 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, lookup: conf.Lookup{Overrides: opts.Overrides, Env: opts.Env}, m: newMetrics()}
	settings, dyn, keys, err := loadConfig(opts.ConfDir, s.lookup)
	if err != nil {
		return nil, err
	}
	s.settings = settings
	keys.Log(s.log)
	s.keyWarnings = keyWarnings(keys)
	if len(dyn.Tokens) == 0 {
		s.log.Warn("no API token configured: management actions that change the cluster will be refused; add a line <token>=<description> to " + filepath.Join(opts.ConfDir, FileTokens))
	}
	if _, ok := dyn.Tokens[sampleToken]; ok {
		s.log.Warn("valid-api-tokens.properties still holds the sample token from QMQ's install guide; anyone who has read the guide can change this cluster: replace it", "file", filepath.Join(opts.ConfDir, FileTokens))
	}
	s.dyn.Store(dyn)
	if s.store, err = s.openStore(ctx); err != nil {
		return nil, err
	}
	s.cache = newCache(s.store, s.log.Named("cache"), s.m)
	if err := s.cache.refresh(ctx); err != nil {
		s.store.Close()
		return nil, fmt.Errorf("initial metadata load: %w", err)
	}
	s.heartbeats = newHeartbeats(s)
	if err := s.listen(); err != nil {
		s.store.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) openStore(ctx context.Context) (store.Store, error) {
	if s.settings.JDBCURL == "" {
		path := filepath.Join(s.settings.StoreRoot, "metaserver.db")
		s.log.Info("no jdbc.url in datasource.properties: using the embedded SQLite store", "path", path)
		st, err := store.OpenSQLite(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open embedded store %s (set store.root to move it): %w", path, err)
		}
		return st, nil
	}
	dsn, ignored, err := store.DSNFromJDBC(s.settings.JDBCURL, s.settings.JDBCUser, s.settings.JDBCPassword)
	if err != nil {
		return nil, fmt.Errorf("%s: jdbc.url: %w", filepath.Join(s.opts.ConfDir, FileDatasource), err)
	}
	if len(ignored) > 0 {
		s.log.Info("jdbc.url parameters without a Go driver equivalent are ignored", "params", ignored)
	}
	s.log.Info("using MySQL store", "url", s.settings.JDBCURL, "user", s.settings.JDBCUser, "pool.size.max", s.settings.PoolSizeMax)
	return store.OpenMySQL(ctx, dsn, s.settings.PoolSizeMax)
}

func (s *Server) listen() error {
	httpAddr := net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.DiscoverPort))
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen on meta.server.discover.port %s (HTTP): %w; is another metaserver or program using it? change meta.server.discover.port in %s", httpAddr, err, FileMetaserver)
	}
	g := httpguard.New(ln, s.httpHandler(), s.settings.Limits.HTTP(s.log.Named("http")))
	s.httpLn, s.http = g.Listener, g.Server
	tcfg := remoting.ServerConfig{
		Addr:         net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.ServerPort)),
		MaxFrameSize: s.settings.MaxFrameSize,
		Logger:       s.log.Named("tcp"),
		OnBadFrame:   func(net.Addr, error) { s.m.badFrames.Inc() },
	}
	s.settings.Limits.Apply(&tcfg)
	s.tcp = remoting.NewServer(tcfg)
	s.m.reg.MustRegister(netlimits.Collectors("qmq_meta", s.tcp, s.httpLn)...)
	s.registerTCPHandlers(s.tcp)
	if err := s.tcp.Listen(); err != nil {
		ln.Close()
		return fmt.Errorf("listen on meta.server.port %d (TCP): %w; change meta.server.port in %s", s.settings.ServerPort, err, FileMetaserver)
	}
	return nil
}

// HTTPAddr is the bound HTTP address (useful with port 0 in tests).
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// TCPAddr is the bound TCP address.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

func (s *Server) dynamic() *Dynamic { return s.dyn.Load() }

// Reload re-reads the dynamic settings. An invalid file is logged and the
// previous values stay in force.
func (s *Server) Reload(reason string) {
	fresh, d, keys, err := loadConfig(s.opts.ConfDir, s.lookup)
	if err != nil {
		s.log.Error("configuration reload rejected; keeping the previous values", "reason", reason, "error", err)
		return
	}
	s.dyn.Store(d)
	s.log.Info("configuration reloaded", "reason", reason,
		"heartbeat.timeout.ms", d.HeartbeatTimeout.Milliseconds(), "min.group.num", d.MinGroupNum, "tokens", len(d.Tokens))
	if fresh != s.settings {
		s.log.Warn("static settings changed on disk; they take effect after a restart", "reason", reason)
	}
	// Warn about keys that were not there before only: a reload is often an
	// edit, and a typo made in it deserves its line, the old ones had theirs.
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := keyWarnings(keys)
	for _, u := range keys.Unknown {
		if !s.keyWarnings[u.String()] {
			s.log.Warn(u.String() + "; it has no effect")
		}
	}
	s.keyWarnings = now
}

// keyWarnings is the set of unknown-key lines of a report.
func keyWarnings(k conf.KeyReport) map[string]bool {
	m := map[string]bool{}
	for _, u := range k.Unknown {
		m[u.String()] = true
	}
	return m
}

// Run serves until ctx is cancelled, then shuts down: it deregisters from
// Consul, stops accepting, finishes in-flight requests and closes the store.
func (s *Server) Run(ctx context.Context) error {
	// The first error of a goroutine ends gctx for all of them; errors after
	// gctx ended are the shutdown's, not causes.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.tcp.Serve(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("tcp server: %w", err)
		}
		return nil
	})
	g.Go(func() error { s.cache.run(gctx, func() time.Duration { return s.settings.RefreshPeriod }); return nil })
	g.Go(func() error { s.heartbeats.run(gctx); return nil })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error {
		paths := []string{FileMetaserver, FileTokens, FileClientLog, FileBrokerHTTPPort}
		for i, p := range paths {
			paths[i] = filepath.Join(s.opts.ConfDir, p)
		}
		conf.Watch(gctx, paths, s.opts.ConfigPollInterval, hup, s.Reload)
		return nil
	})

	deregister := s.registerConsul(gctx)
	s.log.Info("metaserver started", "http", s.HTTPAddr().String(), "tcp", s.TCPAddr().String())

	<-gctx.Done()
	stoppedByError := ctx.Err() == nil
	if stoppedByError {
		s.log.Error("metaserver stopping on error", "error", context.Cause(gctx))
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if deregister != nil {
		if err := deregister(shutdownCtx); err != nil {
			s.log.Warn("consul deregistration failed; the service will be removed by its failing check", "error", err)
		}
	}
	_ = s.http.Shutdown(shutdownCtx)
	_ = s.tcp.Close()
	runErr := g.Wait()
	if !stoppedByError {
		runErr = nil // asked to stop: what failed while stopping is not why
	}
	if err := s.store.Close(); err != nil {
		s.log.Warn("close store", "error", err)
	}
	s.log.Info("metaserver stopped")
	return runErr
}

// registerConsul registers qmq-metaserver when consul.address (or
// CONSUL_HTTP_ADDR) is set. A failure is logged, not fatal: QMQ's own
// discovery over /meta/address keeps working without Consul.
func (s *Server) registerConsul(ctx context.Context) func(context.Context) error {
	if s.settings.ConsulAddress == "" {
		return nil
	}
	ip := s.settings.AdvertiseIP
	if ip == "" {
		ip = outboundIP(s.settings.ConsulAddress)
	}
	port := s.HTTPAddr().(*net.TCPAddr).Port
	tcpPort := s.TCPAddr().(*net.TCPAddr).Port
	reg := consul.Registration{
		Name:      s.settings.ConsulService,
		Address:   ip,
		Port:      port,
		Tags:      []string{"qmq", "metaserver"},
		Meta:      map[string]string{"tcp_port": strconv.Itoa(tcpPort)},
		CheckHTTP: fmt.Sprintf("http://%s/health", net.JoinHostPort(ip, strconv.Itoa(port))),

		DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter,
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dereg, err := consul.Register(rctx, consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}, reg)
	if err != nil {
		s.log.Error("consul registration failed; clients using consul:// will not find this metaserver", "error", err)
		return nil
	}
	s.log.Info("registered in consul", "service", reg.Name, "address", ip, "port", port, "tcp_port", tcpPort)
	return dereg
}

// outboundIP is the local IP used to reach target (no packet is sent).
func outboundIP(target string) string {
	c, err := net.Dial("udp", target)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
