package delay

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

	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage/delaystore"
	"github.com/qmq-go/qmq/storage/vfs"
	"github.com/qmq-go/qmq/tracing"
)

// Options are what a delay server needs besides its Settings: where to log
// and the environment it runs in. Nothing here is read from a file.
type Options struct {
	Logger   hclog.Logger
	Hostname string // the name sent in BROKER_ACQUIRE_META; "" = os.Hostname()
	FS       vfs.FS // the store's file system; nil = the OS's
	// TracerProvider records a span per scheduled and per dispatched
	// message (package tracing); nil = no tracing, no attribute is read.
	TracerProvider trace.TracerProvider
}

// roleUnknown is the role before the metaserver has answered.
const roleUnknown = -1

// Server is a delay server. Create it with New, run it with Run (or Close
// it if Run is never called).
type Server struct {
	settings Settings
	log      hclog.Logger
	hostname string
	m        *metrics
	tracer   tracing.Tracer
	store    Store
	ds       *delaystore.Store // the same store, for replication (replstore.go)
	tcp      *remoting.Server
	http     *httpServer // nil when delay.http.port=-1
	routes   *producerRoutes
	disp     *dispatcher
	slaves   *slavePeer                  // as DELAY_MASTER: which address may replicate (syncpeer.go)
	replica  atomic.Pointer[replica]     // the role's replication once the role is known (replica.go)
	lease    atomic.Pointer[masterLease] // the master's lease with failover.enable (lease.go); nil: none, never fenced

	role   atomic.Int32 // DELAY_MASTER or DELAY_SLAVE once the metaserver says so; roleUnknown before
	online atomic.Bool  // ONLINE acknowledged: SEND_MESSAGE is taken
	group  atomic.Pointer[string]
	// advertised is the address registered (ip:broker.port), named in refusals.
	advertised atomic.Pointer[string]
	// diskFull is the last disk-full refusal of the store (nil: appends work);
	// heartbeats say read-only meanwhile so the metaserver routes producers elsewhere.
	diskFull atomic.Pointer[string]
	// diskFullAt is when (unix ns) the last append was refused for space.
	diskFullAt atomic.Int64
	fs         vfs.FS // the store's file system, to see free space come back
	// dispatched counts messages acknowledged by real-time brokers since
	// start (for /health); inflightOldest is the schedule time (unix ms) of
	// the oldest message the dispatcher holds and has not had acknowledged
	// yet, 0 when it holds none (dueLag).
	dispatched     atomic.Int64
	inflightOldest atomic.Int64
	// parked is how many due messages wait for a retry after a failed send;
	// parkedOldest the schedule time of the oldest (0: none).
	parked       atomic.Int64
	parkedOldest atomic.Int64
	// gateWaitingSince is when dispatching started waiting for the slave
	// to confirm dispatch records (unix ns; 0: not waiting; dispatchgate.go).
	gateWaitingSince atomic.Int64
	// dispatchWithoutSlave: the slave stopped confirming the dispatch log
	// and dispatching goes on without it (dispatchgate.go).
	dispatchWithoutSlave atomic.Bool

	appendErrLog lograte.Limiter
	slaveWaitLog lograte.Limiter
	diskFullLog  lograte.Limiter

	cancels cancels // CANCEL_DELAY (cancel.go)

	closeOnce sync.Once
	closeErr  error
}

// New checks the settings, opens the store and binds broker.port and
// delay.http.port: every settings, store or port problem is returned before
// anything serves. LoadSettings reads Settings from QMQ's delay.properties.
func New(ctx context.Context, settings Settings, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "delay"})
	}
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("invalid delay server settings: %w", err)
	}
	s := &Server{settings: settings, log: opts.Logger, hostname: opts.Hostname, m: newMetrics(), fs: opts.FS, tracer: tracing.New(opts.TracerProvider)}
	if s.fs == nil {
		s.fs = vfs.Default()
	}
	s.role.Store(roleUnknown)
	if s.hostname == "" {
		var err error
		if s.hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("find this machine's hostname (the metaserver identifies delay servers by hostname and broker.port): %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scfg := settings.Store
	scfg.Logger = s.log.Named("store")
	scfg.Registerer = s.m.reg
	scfg.FS = opts.FS
	scfg.MaxMessageSize = settings.MaxMessageSize // per.message.size is the server's and the store's
	st, err := delaystore.Open(scfg)
	if err != nil {
		return nil, fmt.Errorf("open the delay store under %s (store.root): %w", scfg.Root, err)
	}
	s.store, s.ds = st, st
	s.slaves = newSlavePeer(s)
	s.m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_scheduled",
			Help: "Messages due within the store's loaded window (load.in.advance.min) and not yet dispatched."},
			func() float64 { return float64(s.scheduled()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_due_lag_seconds",
			Help: "How late the oldest due and undispatched message is (0: nothing is overdue)."},
			func() float64 { return s.dueLag().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_parked",
			Help: "Due messages waiting for a retry after a failed send to a real-time broker."},
			func() float64 { return float64(s.parked.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qmq_delay_dispatch_waiting_for_slave_seconds",
			Help: "How long dispatching has been holding due messages back until the slave confirms the dispatch log (wait.slave.wrote; 0: not waiting)."},
			func() float64 { return s.gateWaiting().Seconds() }))

	tcfg := remoting.ServerConfig{
		Addr:         net.JoinHostPort(settings.BindHost, strconv.Itoa(settings.Port)),
		MaxFrameSize: settings.MaxFrameSize,
		Logger:       s.log.Named("tcp"),
		OnBadFrame:   func(net.Addr, error) { s.m.badFrames.Inc() },
	}
	settings.Limits.Apply(&tcfg)
	s.tcp = remoting.NewServer(tcfg)
	s.tcp.Handle(protocol.CodeSendMessage, remoting.HandlerFunc(s.handleSend))
	s.serveCancel()
	if err := s.tcp.Listen(); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("listen on broker.port %d: %w; is another server using it? change broker.port in %s", settings.Port, err, FileDelay)
	}
	if s.http, err = s.listenHTTP(); err != nil {
		_ = s.tcp.Close()
		_ = st.Close()
		return nil, err
	}
	var httpLn *httpguard.Listener
	if s.http != nil {
		httpLn = s.http.ln
	}
	s.m.reg.MustRegister(netlimits.Collectors("qmq_delay", s.tcp, httpLn)...)
	s.routes = newProducerRoutes(settings, s.hostname, s.log.Named("routes"))
	s.disp = newDispatcher(s)
	return s, nil
}

// Addr is the bound TCP address of broker.port (useful with broker.port=0).
func (s *Server) Addr() net.Addr { return s.tcp.Addr() }

// Port is the bound port of broker.port.
func (s *Server) Port() int { return s.tcp.Addr().(*net.TCPAddr).Port }

// HTTPAddr is the bound address of delay.http.port (nil when turned off).
func (s *Server) HTTPAddr() net.Addr {
	if s.http == nil {
		return nil
	}
	return s.http.ln.Addr()
}

// Group is the delay group the metaserver assigned ("" until then).
func (s *Server) Group() string {
	if g := s.group.Load(); g != nil {
		return *g
	}
	return ""
}

// Online reports whether the metaserver acknowledged this server's ONLINE.
func (s *Server) Online() bool { return s.online.Load() }

// Registry is the server's Prometheus registry (its own and the store's series).
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// Settings returns the settings in force.
func (s *Server) Settings() Settings { return s.settings }

// Run serves until ctx is cancelled or the server cannot go on (the
// metaserver assigns a role it does not support), then shuts down: OFFLINE
// to the metaserver if it was online, stop serving, close the store. A
// former master rejoining as slave past the takeover point cuts its logs'
// tail after the store is closed and stops for a restart (rejoin.go).
func (s *Server) Run(ctx context.Context) error {
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
	master := make(chan struct{}) // closed once the metaserver says this is a DELAY_MASTER
	reg := &registrar{s: s, master: master}
	g.Go(func() error { return reg.run(gctx) })
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-master:
		}
		s.disp.run(gctx)
		return nil
	})
	s.log.Info("delay server started", "addr", s.Addr().String(), "hostname", s.hostname, "store.root", s.settings.Store.Root)

	<-gctx.Done()
	stoppedByError := ctx.Err() == nil
	if stoppedByError {
		s.log.Error("delay server stopping on error", "error", context.Cause(gctx))
	}
	s.online.Store(false)
	runErr := g.Wait()
	if r := s.replica.Load(); r != nil {
		r.stop() // its goroutines ended with gctx; sync.port is released before the store closes
	}
	if !stoppedByError {
		runErr = nil // asked to stop: what failed while stopping is not why
	}
	reg.offline()
	err := s.Close()
	if cut := (*rejoinCut)(nil); errors.As(runErr, &cut) && err == nil {
		err = s.cutTail(cut) // rejoin.go: the store is closed now
	}
	s.log.Info("delay server stopped")
	return errors.Join(runErr, err)
}

// Close stops serving, closes the connections to brokers and the store. Run
// calls it; call it yourself only for a Server whose Run was never called.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		_ = s.tcp.Close()
		if s.http != nil {
			_ = s.http.srv.Close()
		}
		s.routes.close()
		if err := s.store.Close(); err != nil {
			s.closeErr = fmt.Errorf("close the delay store: %w", err)
		}
	})
	return s.closeErr
}

// scheduled is how many stored messages of the store's loaded window
// (load.in.advance.min ahead) are not yet dispatched.
func (s *Server) scheduled() int64 { return s.store.Stats().Scheduled }

// dueLag is how late the oldest due message not yet acknowledged by a
// broker is: one still in the store's wheel, one being sent, or one parked
// for a retry (a subject no broker takes shows here).
func (s *Server) dueLag() time.Duration {
	lag := s.store.Stats().OldestDueLateness
	for _, oldest := range []int64{s.inflightOldest.Load(), s.parkedOldest.Load()} {
		if oldest != 0 {
			lag = max(lag, time.Since(time.UnixMilli(oldest)))
		}
	}
	return max(lag, 0)
}

// recheckDisk ends the read-only state of a full disk once space is back:
// producers are not sent here meanwhile, so no append would find out. With
// disk.free.min.bytes the free space is measured; a refusal of the file
// system itself (no reserve set) is given up after a heartbeat interval,
// and the next append tells again if the disk is still full.
func (s *Server) recheckDisk() {
	if s.diskFull.Load() == nil {
		return
	}
	if min := s.settings.Store.DiskFreeMin; min > 0 {
		if u, err := s.fs.Usage(s.settings.Store.Root); err != nil || u.Free < min {
			return
		}
	} else if time.Since(time.Unix(0, s.diskFullAt.Load())) < s.settings.HeartbeatInterval {
		return
	}
	s.diskFull.Store(nil)
	s.log.Info("disk space is back: heartbeats say writable again", "store.root", s.settings.Store.Root)
}

// brokerState is what heartbeats say: read-only while the disk is full.
func (s *Server) brokerState() int32 {
	if s.diskFull.Load() != nil {
		return protocol.BrokerStateR
	}
	return protocol.BrokerStateRW
}
