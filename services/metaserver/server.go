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

// Options are how a metaserver runs, besides its Settings: where it logs
// and where its dynamic configuration comes from. The zero value is a
// metaserver with DefaultDynamic that never reloads (and so has no API
// token); LoadDir returns the Options of a conf directory.
type Options struct {
	Logger hclog.Logger // nil = hclog's default, named "metaserver"
	// Dynamic is the dynamic configuration at start; nil = DefaultDynamic().
	// The server keeps it and reads it concurrently: do not change it
	// afterwards (Reload returns a new one instead).
	Dynamic *Dynamic
	// Keys is the loader's report on the configuration's keys (see
	// LoadSettings): New logs it, and a reload warns only about unknown keys
	// that are new since, so that a typo gets one line, not one per reload.
	Keys conf.KeyReport
	// Reload re-reads the configuration (FileReloader re-reads a conf
	// directory): on SIGHUP, on (*Server).Reload and every
	// ConfigPollInterval. Its dynamic settings replace the running ones; its
	// static settings only get a warning when they differ from the running
	// ones, since they need a restart (a source without static settings
	// returns the running ones). A polled reload logs only what differs from
	// the previous one. nil = the dynamic settings never change and SIGHUP is
	// left alone.
	Reload func() (Settings, *Dynamic, conf.KeyReport, error)
	// ConfigPollInterval is how often Reload is polled (QMQ polls its files
	// every 10 s, the default).
	ConfigPollInterval time.Duration
	// ConfDir is the directory the configuration was loaded from, "" when it
	// was built in code. It is never read: messages name its files, e.g.
	// where to add an API token.
	ConfDir string
}

// sampleToken is the token printed in QMQ's install guide (and our sample config).
const sampleToken = "9p4lGl8JoTH9GhemH9QFtfVmmRj!DR@OjIcYyqoDN8MLSY!6Fx6twXoZL0K3tV11"

// Server is a running metaserver. Create it with New, run it with Run.
type Server struct {
	opts       Options
	log        hclog.Logger
	settings   Settings
	dyn        atomic.Pointer[Dynamic]
	reloads    reloadState
	store      store.Store
	cache      *cache
	heartbeats *heartbeats
	m          *metrics

	httpLn *httpguard.Listener
	http   *http.Server
	tcp    *remoting.Server
}

// New checks settings and opts.Dynamic, opens the store and binds both
// ports; it reads no configuration file (see LoadDir). Every configuration
// or store problem is returned before anything listens.
func New(ctx context.Context, settings Settings, opts Options) (*Server, error) {
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metaserver settings:\n%w", err)
	}
	if opts.Dynamic == nil {
		opts.Dynamic = DefaultDynamic()
	}
	if err := opts.Dynamic.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metaserver dynamic settings:\n%w", err)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "metaserver"})
	}
	if opts.ConfigPollInterval == 0 {
		opts.ConfigPollInterval = 10 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, settings: settings, m: newMetrics()}
	opts.Keys.Log(s.log)
	s.reloads = reloadState{keyWarnings: keyWarnings(opts.Keys), static: settings}
	s.warnTokens(opts.Dynamic)
	s.dyn.Store(opts.Dynamic)
	var err error
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

// warnTokens warns at start-up about API tokens that leave the cluster
// unmanageable (none) or open to anyone (the install guide's sample),
// saying where to fix them.
func (s *Server) warnTokens(d *Dynamic) {
	_, sample := d.Tokens[sampleToken]
	switch {
	case len(d.Tokens) == 0 && s.opts.ConfDir != "":
		s.log.Warn("no API token configured: management actions that change the cluster will be refused; add a line <token>=<description> to " + filepath.Join(s.opts.ConfDir, FileTokens))
	case len(d.Tokens) == 0:
		s.log.Warn("no API token configured: management actions that change the cluster will be refused; add one to the Tokens of Options.Dynamic")
	case sample && s.opts.ConfDir != "":
		s.log.Warn("valid-api-tokens.properties still holds the sample token from QMQ's install guide; anyone who has read the guide can change this cluster: replace it", "file", filepath.Join(s.opts.ConfDir, FileTokens))
	case sample:
		s.log.Warn("the API tokens include the sample token from QMQ's install guide; anyone who has read the guide can change this cluster: replace it")
	}
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
	// Validate has parsed the URL already; this cannot fail but is not ignored.
	dsn, ignored, err := store.DSNFromJDBC(s.settings.JDBCURL, s.settings.JDBCUser, s.settings.JDBCPassword)
	if err != nil {
		return nil, fmt.Errorf("jdbc.url (datasource.properties): %w", err)
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
	if s.opts.Reload != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		g.Go(func() error { s.pollConfig(gctx, hup); return nil })
	}

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
