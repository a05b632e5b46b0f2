package watchdog

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

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/tracing"
)

// Options are what a watchdog needs besides its Settings. Nothing here is
// read from a file.
type Options struct {
	Logger hclog.Logger
	// Node is this watchdog's name in the election (leader_election.node,
	// or the Consul lock's value); "" =
	// <hostname>-<pid>, unique per process, so that two watchdogs on one
	// machine never both believe they lead.
	Node string
	// ProducerOptions are added to the producer's (tests shorten its
	// timings); the watchdog sets the appCode and the logger itself.
	ProducerOptions []client.ProducerOption
	// TracerProvider records a span per resent message and its producer's
	// send spans (package tracing); nil = no tracing.
	TracerProvider trace.TracerProvider
}

// Server is a watchdog. Create it with New, run it with Run (or Close it
// if Run is never called).
type Server struct {
	settings Settings
	opts     Options
	log      hclog.Logger
	node     string
	m        *metrics
	tracer   tracing.Tracer
	meta     *metaDB
	el       election
	http     *httpServer // nil when watchdog.http.port=-1

	// leader is the token of the running lead (nil: following). Each lead
	// has its own, so that a late deadline timer of an ended lead cannot
	// mark a newer one as ended. Changed under leadMu with the metric.
	leader atomic.Pointer[leadToken]
	leadMu sync.Mutex
	// abandon (tests) makes Run end without giving the lead up, as a
	// killed process would: the others wait for the lease to expire.
	abandon atomic.Bool

	mu       sync.Mutex
	dbs      map[string]*dbHealth // the leader's client databases, by url, for /health
	electErr string               // the last election error ("" when the last attempt worked)
	metaErr  string               // why the leader has no producer (the metaserver cannot be reached); "" = it has one

	prodMu   sync.Mutex
	producer *client.Producer // created by the first lead, closed by Close

	electLog lograte.Limiter

	closeOnce sync.Once
	closeErr  error
}

// New checks the settings, opens the metaserver's database (and checks
// that leader_election and datasource_config can be read) and binds
// watchdog.http.port: every such problem is returned before anything runs.
func New(ctx context.Context, settings Settings, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "watchdog"})
	}
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("invalid watchdog settings: %w", err)
	}
	s := &Server{settings: settings, opts: opts, log: opts.Logger, node: opts.Node, m: newMetrics(), tracer: tracing.New(opts.TracerProvider), dbs: map[string]*dbHealth{}}
	if s.node == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("find this machine's hostname (a watchdog's node name in leader_election is <hostname>-<pid>): %w", err)
		}
		s.node = host + "-" + strconv.Itoa(os.Getpid())
	}
	meta, err := openMetaDB(ctx, settings)
	if err != nil {
		return nil, err
	}
	s.meta = meta
	if settings.useConsulElection() {
		if s.el, err = newConsulElection(settings, s.node, s.log.Named("consul")); err != nil {
			_ = meta.close()
			return nil, err
		}
	} else {
		s.el = &tableElection{db: meta, name: electionName(settings.Namespace), node: s.node, lease: settings.Lease, interval: settings.ElectInterval}
	}
	if s.http, err = s.listenHTTP(); err != nil {
		s.el.close()
		_ = meta.close()
		return nil, err
	}
	return s, nil
}

// HTTPAddr is the bound address of watchdog.http.port (nil when off).
func (s *Server) HTTPAddr() net.Addr {
	if s.http == nil {
		return nil
	}
	return s.http.ln.Addr()
}

// Leading reports whether this watchdog leads its namespace now.
func (s *Server) Leading() bool { return s.leader.Load() != nil }

// leadToken identifies one lead (a non-zero size, so that two are never
// the same pointer).
type leadToken struct{ _ byte }

// swapLeader replaces the lead's token old with next if old is current,
// keeping the leader metric in step; false if another lead is current.
func (s *Server) swapLeader(old, next *leadToken) bool {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leader.Load() != old {
		return false
	}
	s.leader.Store(next)
	if next != nil {
		s.m.leader.Set(1)
	} else {
		s.m.leader.Set(0)
	}
	return true
}

// Node is this watchdog's name in the election.
func (s *Server) Node() string { return s.node }

// Registry is the watchdog's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.m.reg }

// Run takes part in the election until ctx is cancelled, resending rows
// while it leads; then it gives the lead up and closes.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if s.http != nil {
		g.Go(func() error { return s.http.serve(gctx) })
	}
	g.Go(func() error { s.elect(gctx); return nil })
	reg := s.registerConsul(gctx)
	s.log.Info("watchdog started", "node", s.node, "namespace", s.settings.Namespace, "election", s.el.describe(),
		"metaserver_db", s.meta.where, "checkInterval", s.settings.CheckInterval)
	err := g.Wait()
	reg.deregister()
	if ctx.Err() != nil {
		err = nil // asked to stop
	}
	s.log.Info("watchdog stopped", "node", s.node)
	return errors.Join(err, s.Close())
}

// Close closes the producer, the HTTP server and the metaserver's
// database. Run calls it.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.http != nil {
			_ = s.http.srv.Close()
		}
		s.prodMu.Lock()
		if s.producer != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.producer.Close(ctx)
			cancel()
			s.producer = nil
		}
		s.prodMu.Unlock()
		s.el.close()
		s.closeErr = s.meta.close()
	})
	return s.closeErr
}

// elect runs the election until ctx ends (see election.go), starting and
// stopping the lead. It owns the lead goroutine: it waits for it to end
// before it returns, then gives the lead up.
func (s *Server) elect(ctx context.Context) {
	l := &lead{s: s}
	every := s.el.every()
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	renewed := time.Now()
	for ctx.Err() == nil {
		// One attempt may take at most an interval, so that a hung database
		// or agent does not delay the next check of the lease.
		tctx, cancel := context.WithTimeout(ctx, every)
		held, until, err := s.el.try(tctx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		s.noteElection(err)
		if l.expired() {
			l.stop(fmt.Sprintf("the lead ran out unrenewed, last renewed %v ago (%s): is it reachable? last error: %v",
				time.Since(renewed).Round(time.Millisecond), s.el.describe(), err))
		}
		switch {
		case held && !l.running():
			renewed = time.Now()
			l.start(ctx, until)
		case held:
			renewed = time.Now()
			l.renewed(until)
		case errors.Is(err, errLeadLost):
			l.stop(err.Error())
		case err == nil && l.running():
			l.stop("another watchdog holds the lead")
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
	}
	l.stop("stopping")
	if s.abandon.Load() {
		return
	}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.el.release(rctx); err != nil {
		s.log.Warn("could not give the lead up; another watchdog takes over once it expires", "election", s.el.describe(), "error", err)
	}
}

// lead is the running lead of elect: the goroutine resending rows, and
// the timer that ends it when the lease runs out unrenewed, even while an
// election statement hangs.
type lead struct {
	s        *Server
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	deadline *time.Timer
	tok      *leadToken
}

func (l *lead) running() bool { return l.cancel != nil }

// expired reports whether the lease ran out and ended the lead's context.
func (l *lead) expired() bool { return l.running() && l.ctx.Err() != nil }

// start begins leading until until (when the lease, as this watchdog
// counts it, ends) unless renewed.
func (l *lead) start(ctx context.Context, until time.Time) {
	s := l.s
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	l.tok = &leadToken{}
	s.swapLeader(nil, l.tok)
	// At the deadline the lead ends at once, sending and Leading() alike,
	// even while elect waits on a hung attempt; elect tidies up after. The
	// timer holds this lead's own cancel and token.
	cancel, tok := l.cancel, l.tok
	l.deadline = time.AfterFunc(time.Until(until), func() {
		cancel()
		s.swapLeader(tok, nil)
	})
	s.log.Info("leader of the namespace: resending rows of its client databases", "node", s.node, "namespace", s.settings.Namespace)
	go func(ctx context.Context, done chan struct{}) {
		defer close(done)
		s.lead(ctx)
	}(l.ctx, l.done)
}

func (l *lead) renewed(until time.Time) { l.deadline.Reset(time.Until(until)) }

// stop ends the lead and waits for its goroutine.
func (l *lead) stop(why string) {
	if !l.running() {
		return
	}
	l.deadline.Stop()
	l.cancel()
	<-l.done
	l.cancel = nil
	l.s.swapLeader(l.tok, nil)
	l.s.log.Warn("no longer the leader: stopped resending", "node", l.s.node, "reason", why)
}

// noteElection records the outcome of an election attempt for /health and
// logs failures at most every 10 s.
func (s *Server) noteElection(err error) {
	s.mu.Lock()
	was := s.electErr
	if err != nil {
		s.electErr = err.Error()
	} else {
		s.electErr = ""
	}
	s.mu.Unlock()
	switch {
	case err != nil:
		s.electLog.Log(s.log, hclog.Error, "leader election failed; a leader stops resending once its lease is not renewed", "error", err)
	case was != "":
		s.log.Info("leader election works again", "election", s.el.describe())
	}
}
