package backup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/backup/storemetrics"
	"github.com/qmq-go/qmq/internal/httpguard"
)

// Options are what New needs besides Settings.
type Options struct {
	// Hostname is the name sent in BROKER_ACQUIRE_META; "" = os.Hostname().
	// With broker.port it names the backup's row in the broker table.
	Hostname string
	Logger   hclog.Logger // nil: no logging
	// Query builds the query API's handler (/api/… on the HTTP port),
	// given Server.Detail as the source of content the store does not keep;
	// nil: only /health, /metrics and the dead-letter resend.
	Query func(detail query.DetailSource) http.Handler
}

// Server is the backup service: it follows its broker group's slave,
// fills the Store, and serves /health, /metrics, the query API and the
// dead-letter resend on backup.server.http.port.
type Server struct {
	settings Settings
	store    backup.Store
	log      hclog.Logger
	hostname string
	query    http.Handler
	m        *metrics
	f        *follower
	cp       *checkpointFile
	reg      *registrar
	resender resender
	skip     *skipList

	httpLn  *httpguard.Listener
	httpSrv *http.Server

	mu        sync.Mutex
	lastSaved savedCheckpoint
	cpGroup   string // the group of the checkpoint read at start ("" none)
	fatal     chan error
	ran       bool
}

// New checks settings and binds the HTTP port; Run starts following. The
// caller owns store and closes it after Run returns.
func New(settings Settings, store backup.Store, opts Options) (*Server, error) {
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("backup settings: %w", err)
	}
	if store == nil {
		return nil, errors.New("backup: no store: open the Pebble or HBase store and pass it to New")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{settings: settings, store: store, log: opts.Logger, hostname: opts.Hostname, fatal: make(chan error, 1)}
	if opts.Query != nil {
		s.query = opts.Query(s.Detail)
	}
	if s.hostname == "" {
		var err error
		if s.hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("find this machine's hostname (the metaserver identifies the backup by hostname and broker.port): %w", err)
		}
	}
	cp, err := newCheckpointFile(settings.StoreRoot)
	if err != nil {
		return nil, err
	}
	s.cp = cp
	var f *follower
	s.m = newMetrics(func() Lag { return f.lag() }, func() int { return int(f.pending.Load()) })
	// The store's own series (operation times and results) on the same registry.
	wrapped, err := storemetrics.Wrap(store, settings.StoreType, s.m.reg)
	if err != nil {
		return nil, fmt.Errorf("backup: store metrics: %w", err)
	}
	store = wrapped
	s.store = store
	s.skip = newSkipList(settings.SkipSubjects, settings.SkipFile, settings.SkipReloadInterval, s.log.Named("skip"), s.m)
	f = newFollower(settings, store, cp, s.skip, s.log.Named("follower"), s.m)
	s.f = f
	saved, ok, err := cp.load()
	if err != nil {
		return nil, err
	}
	if ok {
		f.restore(saved)
		s.cpGroup, s.lastSaved = saved.Group, saved
		s.log.Info("resuming from the checkpoint", "group", saved.Group, "message_offset", saved.MessageOffset, "action_offset", saved.ActionOffset,
			"pending_pulls", f.pending.Load())
	}
	s.reg = &registrar{s: s}
	if err := s.listenHTTP(); err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// Run follows the group until ctx ends, then saves the checkpoint and
// returns. It returns early with an error that a restart cannot fix (the
// checkpoint belongs to another group).
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("backup: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := httpguard.Serve(ctx, s.httpSrv, s.httpLn); err != nil {
			s.log.Error("HTTP server stopped", "error", err)
		}
	})
	wg.Go(func() { s.reg.run(ctx) })
	var fw sync.WaitGroup
	fw.Go(func() { s.f.run(ctx) })
	wg.Go(func() { s.runCheckpoints(ctx) })
	wg.Go(func() { s.skip.run(ctx) })
	s.log.Info("backup started", "http", s.HTTPAddr().String(), "hostname", s.hostname, "broker.port", s.settings.Port,
		"store.root", s.settings.StoreRoot, "store.type", s.settings.StoreType, "enable.record", s.settings.EnableRecord,
		"skip_backup", len(s.skip.get()), "skip_backup_file", s.settings.SkipFile)
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.fatal:
		cancel()
	}
	fw.Wait()
	wg.Wait()
	if serr := s.saveCheckpoint(); serr != nil {
		s.log.Error("cannot save the checkpoint at shutdown; the next start replays from the previous one (no double records: writes are idempotent)", "error", serr)
	}
	s.reg.shutdown()
	s.resender.close()
	s.log.Info("backup stopped", "message_offset", s.f.msgOff.Load(), "action_offset", s.f.actOff.Load())
	return err
}

// runCheckpoints saves the offsets every sync.offset.flush.interval.
func (s *Server) runCheckpoints(ctx context.Context) {
	t := time.NewTicker(s.settings.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.saveCheckpoint(); err != nil {
			s.log.Error("cannot save the checkpoint; retrying (a restart would replay more, never lose)", "error", err)
		}
	}
}

// saveCheckpoint writes the offsets and the pull map if they moved.
func (s *Server) saveCheckpoint() error {
	f := s.f
	if !f.started.Load() {
		return nil
	}
	t, _ := f.target()
	f.actMu.Lock()
	cp := savedCheckpoint{Group: t.group, MessageOffset: f.msgOff.Load(), ActionOffset: f.actOff.Load()}
	s.mu.Lock()
	last := s.lastSaved
	s.mu.Unlock()
	if cp.Group == "" {
		cp.Group = last.Group
	}
	if cp.MessageOffset == last.MessageOffset && cp.ActionOffset == last.ActionOffset && cp.Group == last.Group {
		f.actMu.Unlock()
		return nil
	}
	cp.Consumers = f.pulls.save()
	f.actMu.Unlock()
	// Every entry before these offsets was accepted by the store, but a
	// store may accept before its disk has it (Pebble writes without an
	// fsync each): make it durable first, so a checkpoint never points past
	// entries a crash could lose.
	ctx, cancel := context.WithTimeout(context.Background(), s.settings.StoreTimeout)
	err := s.store.Sync(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("sync the store before saving the checkpoint (the checkpoint stays where it was): %w", err)
	}
	if err := s.cp.save(cp); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastSaved = savedCheckpoint{Group: cp.Group, MessageOffset: cp.MessageOffset, ActionOffset: cp.ActionOffset}
	s.mu.Unlock()
	return nil
}

func (s *Server) listenHTTP() error {
	addr := net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.HTTPPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on backup.server.http.port %d (queries, /health, /metrics): %w; is another process using it? change backup.server.http.port in %s",
			s.settings.HTTPPort, err, FileBackup)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.health)
	mux.Handle("/metrics", promHandler(s.m))
	mux.HandleFunc("/api/message/dead/resend", s.resend)
	if s.query != nil {
		mux.Handle("/api/", s.query)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("no such endpoint %s; the backup serves /health, /metrics, /api/message, /api/message/dead, /api/message/detail, /api/message/records, /api/message/retry and POST /api/message/dead/resend", r.URL.Path), http.StatusNotFound)
	})
	cfg := s.settings.HTTPLimits
	cfg.Logger = s.log.Named("http")
	g := httpguard.New(ln, mux, cfg)
	s.httpLn, s.httpSrv = g.Listener, g.Server
	return nil
}
