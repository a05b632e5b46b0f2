package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/vfs"
	"github.com/qmq-go/qmq/tracing"
)

// Options are what a broker needs besides its Settings: where to log and
// the environment it runs in. Nothing here is read from a file.
type Options struct {
	Logger   hclog.Logger
	Hostname string // the name sent in BROKER_ACQUIRE_META; "" = os.Hostname()
	FS       vfs.FS // the store's file system; nil = the OS's (tests inject a full disk)
	// TracerProvider records a span per stored message (package tracing);
	// nil = no tracing, and no message attribute is read.
	TracerProvider trace.TracerProvider
}

// Server is a broker. Create it with New, run it with Run (or Close it if
// Run is never called).
//
// The broker's state lives in an instance: one store, one pair of ports, one
// metrics registry. A master that learns another broker took its group
// over rejoins as the group's slave by building a fresh instance
// (failover.go); the Server only swaps which instance is current, so its
// accessors never see a half-built one.
type Server struct {
	settings Settings
	opts     Options
	log      hclog.Logger
	hostname string
	current  atomic.Pointer[instance]
}

// instance is one life of the broker between its start (or a rejoin) and
// its stop.
type instance struct {
	log      hclog.Logger
	settings Settings
	fs       vfs.FS
	hostname string
	m        *metrics
	tracer   tracing.Tracer
	store    *storage.Store
	tcp      *remoting.Server
	http     *httpServer // nil when broker.http.port=-1

	online atomic.Bool
	group  atomic.Pointer[string]
	// role is the metaserver's answer (protocol.RoleMaster, RoleSlave), roleUnknown before.
	role        atomic.Int32
	replica     atomic.Pointer[replica]
	lagReadonly atomic.Bool // the slave lags: heartbeats say read-only (replica.go)
	slaves      *slavePeer  // as master: which address may replicate (syncpeer.go)
	// advertised is the address registered for clients (ip:broker.port),
	// named in refusals; nil until the metaserver has answered.
	advertised atomic.Pointer[string]

	// Rate-limited log lines of errors every send hits (lograte.go).
	appendErrLog lograte.Limiter
	diskFullLog  lograte.Limiter
	// leaseUntil (unix ns) is when this master's lease may have run out for
	// the metaserver, minus a margin; 0: no lease (failover.go).
	leaseUntil atomic.Int64
	// markedReadonly: the subjects ("*": all) an admin made read-only in this
	// group with MarkReadonlyBrokerGroup, from the metaserver's last answer to
	// ONLINE or HEARTBEAT; nil until a qmq-go metaserver has said.
	markedReadonly atomic.Pointer[[]string]

	cursorsMu sync.Mutex
	cursors   map[cursorKey]*cursor

	subs   *subscribers
	routes *routeChecker
	subEnv *subEnvRules

	bgCtx    context.Context // cancelled by shutdown: long polls and background work end
	bgCancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// New checks the settings, opens the store and binds broker.port. Every
// settings, store or port problem is returned before anything serves.
// LoadSettings reads Settings from QMQ's broker.properties.
func New(ctx context.Context, settings Settings, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "broker"})
	}
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("invalid broker settings: %w", err)
	}
	s := &Server{settings: settings, opts: opts, log: opts.Logger, hostname: opts.Hostname}
	if s.hostname == "" {
		var err error
		if s.hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("find this machine's hostname (the metaserver identifies brokers by hostname and broker.port): %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inst, err := s.newInstance("")
	if err != nil {
		return nil, err
	}
	s.current.Store(inst)
	return s, nil
}

// newInstance opens the store and binds the ports on a fresh metrics
// registry: at New, and again after a rejoin (Run). group is the group the
// previous instance was in ("" at start).
func (s *Server) newInstance(group string) (*instance, error) {
	n := &instance{log: s.log, settings: s.settings, fs: s.opts.FS, hostname: s.hostname, m: newMetrics(), tracer: tracing.New(s.opts.TracerProvider)}
	n.role.Store(roleUnknown)
	if group != "" {
		n.group.Store(&group)
	}
	n.slaves = newSlavePeer(n)
	if err := n.open(); err != nil {
		return nil, err
	}
	return n, nil
}

func (s *instance) open() error {
	scfg := s.settings.Store
	scfg.Logger = s.log.Named("store")
	scfg.Registerer = s.m.reg
	scfg.FS = s.fs
	var err error
	if s.store, err = storage.Open(scfg); err != nil {
		return fmt.Errorf("open store under %s (store.root): %w", scfg.Root, err)
	}
	s.m.reg.MustRegister(newBacklogCollector(s)) // consumer backlog and dead letters, read at each scrape
	s.cursors = make(map[cursorKey]*cursor)
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.subs = newSubscribers(s)
	s.routes = newRouteChecker(s)
	s.subEnv = newSubEnvRules(s)
	tcfg := remoting.ServerConfig{
		Addr:         net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.Port)),
		MaxFrameSize: s.settings.MaxFrameSize,
		Logger:       s.log.Named("tcp"),
		OnBadFrame:   func(net.Addr, error) { s.m.badFrames.Inc() },
	}
	s.settings.Limits.Apply(&tcfg)
	s.tcp = remoting.NewServer(tcfg)
	s.tcp.Handle(protocol.CodeSendMessage, remoting.HandlerFunc(s.handleSend))
	s.tcp.Handle(protocol.CodePullMessage, remoting.HandlerFunc(s.handlePull))
	s.tcp.Handle(protocol.CodeAckRequest, remoting.HandlerFunc(s.handleAck))
	s.tcp.Handle(protocol.CodeConsumeManage, remoting.HandlerFunc(s.handleConsumeManage))
	if err := s.tcp.Listen(); err != nil {
		s.bgCancel()
		s.store.Close()
		return fmt.Errorf("listen on broker.port %d: %w; is another broker using it? change broker.port in %s", s.settings.Port, err, FileBroker)
	}
	if s.http, err = s.listenHTTP(); err != nil {
		s.bgCancel()
		_ = s.tcp.Close()
		s.store.Close()
		return err
	}
	var httpLn *httpguard.Listener
	if s.http != nil {
		httpLn = s.http.ln
	}
	s.m.reg.MustRegister(netlimits.Collectors("qmq_broker", s.tcp, httpLn)...)
	return nil
}

// inst is the current instance.
func (s *Server) inst() *instance { return s.current.Load() }

// Addr is the bound TCP address (useful with broker.port=0).
func (s *Server) Addr() net.Addr { return s.inst().Addr() }

// Port is the bound TCP port.
func (s *Server) Port() int { return s.inst().Port() }

// HTTPAddr is the bound address of broker.http.port (nil when turned off).
func (s *Server) HTTPAddr() net.Addr { return s.inst().HTTPAddr() }

// Group is the broker group the metaserver assigned ("" until then).
func (s *Server) Group() string { return s.inst().Group() }

// Online reports whether the metaserver acknowledged this broker's ONLINE.
func (s *Server) Online() bool { return s.inst().Online() }

// Registry is the Prometheus registry of the current instance (its own and
// the store's series); a rejoin starts a fresh one.
func (s *Server) Registry() *prometheus.Registry { return s.inst().m.reg }

// Settings returns the settings in force.
func (s *Server) Settings() Settings { return s.settings }

// Close stops serving and closes the store. Run calls it; call it yourself
// only for a Server whose Run was never called.
func (s *Server) Close() error { return s.inst().Close() }

func (s *instance) Addr() net.Addr { return s.tcp.Addr() }

func (s *instance) Port() int { return s.tcp.Addr().(*net.TCPAddr).Port }

func (s *instance) Group() string {
	if g := s.group.Load(); g != nil {
		return *g
	}
	return ""
}

func (s *instance) Online() bool { return s.online.Load() }

// Run serves until ctx is cancelled or the broker cannot go on (the
// metaserver assigns a role this broker does not support), then shuts down:
// OFFLINE to the metaserver if it was online, stop serving, close the store.
// A master that learns another broker took its group over restarts within
// the process as the group's slave (failover.go), cutting the tail of its
// logs that was never replicated.
func (s *Server) Run(ctx context.Context) error {
	for {
		cur := s.inst()
		err := cur.run(ctx)
		var rj *rejoinError
		if !errors.As(err, &rj) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("rejoining the group as its slave: restarting the broker in-process", "reason", rj.reason)
		if rj.truncate {
			scfg := s.settings.Store
			scfg.Logger = s.log.Named("store")
			scfg.FS = s.opts.FS
			oldMsg, oldAct, terr := storage.TruncateLogs(scfg, rj.messageEnd, rj.actionEnd)
			if terr != nil {
				return fmt.Errorf("cut the unreplicated tail of this former master's logs: %w; to recover, stop this broker, delete its store.root and start it: it copies the group's master", terr)
			}
			s.log.Warn("cut the tail this former master never replicated", "message_log_end", rj.messageEnd, "message_log_was", oldMsg,
				"action_log_end", rj.actionEnd, "action_log_was", oldAct)
		}
		if backoff.Sleep(ctx, 200*time.Millisecond) != nil {
			return nil
		}
		next, err := s.newInstance(cur.Group())
		if err != nil {
			return err
		}
		s.current.Store(next)
	}
}

func (s *instance) run(ctx context.Context) error {
	// The first error of a goroutine ends gctx for all of them; errors after
	// gctx ended are the shutdown's, not causes.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.tcp.Serve(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("tcp server: %w", err)
		}
		return nil
	})
	if s.http != nil {
		g.Go(func() error {
			if err := s.http.serve(gctx); err != nil && gctx.Err() == nil {
				return err
			}
			return nil
		})
	}
	g.Go(func() error { s.subs.run(gctx); return nil })
	g.Go(func() error { s.routes.run(gctx); return nil })
	g.Go(func() error { s.subEnv.run(gctx); return nil })
	reg := &registrar{s: s}
	g.Go(func() error { return reg.run(gctx) })
	s.log.Info("broker started", "addr", s.Addr().String(), "hostname", s.hostname, "store.root", s.settings.Store.Root)

	<-gctx.Done()
	stoppedByError := ctx.Err() == nil
	if stoppedByError {
		s.log.Error("broker stopping on error", "error", context.Cause(gctx))
	}
	s.online.Store(false)
	runErr := g.Wait() // the TCP server stops with gctx; handlers and the registrar have returned
	if !stoppedByError {
		runErr = nil // asked to stop: what failed while stopping is not why
	}
	if r := s.replica.Load(); r != nil {
		r.stop()
	}
	s.routes.close()
	reg.offline()
	err := s.Close()
	s.log.Info("broker stopped")
	return errors.Join(runErr, err)
}

func (s *instance) Close() error {
	s.closeOnce.Do(func() {
		s.bgCancel()
		_ = s.tcp.Close()
		if err := s.store.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}
