package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"net"
	"net/http"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/httpguard"
)

//go:embed assets
var assets embed.FS

// Options are the console's collaborators.
type Options struct {
	Logger hclog.Logger // nil: no logging
}

// Server is a console bound to its port; Run serves it.
type Server struct {
	settings Settings
	log      hclog.Logger
	src      *sources
	rates    *rateSampler
	m        *metrics
	pages    *template.Template
	guard    *httpguard.Guard
}

// New validates settings and binds the console's port; nothing is served
// until Run.
func New(settings Settings, opts Options) (*Server, error) {
	if err := settings.Validate(); err != nil {
		return nil, fmt.Errorf("console settings: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	s := &Server{settings: settings, log: log, src: newSources(settings), rates: newRateSampler(), pages: pages, m: newMetrics()}
	ln, err := net.Listen("tcp", settings.Listen)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %s: %w; is another process using it? change console.port (or qmq dev --console)", settings.Listen, err)
	}
	limits := settings.Limits
	limits.Logger = log.Named("http")
	s.guard = httpguard.New(ln, s.routes(), limits)
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.guard.Listener.Addr() }

// URL is the console's base URL.
func (s *Server) URL() string { return "http://" + s.Addr().String() + "/" }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("console serving", "url", s.URL(), "metaserver", s.settings.MetaHTTP, "backup", s.settings.BackupHTTP, "open_reads", s.settings.OpenReads)
	return httpguard.Serve(ctx, s.guard.Server, s.guard.Listener)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.FileServerFS(assets))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", s.m.handler())
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/cluster", http.StatusSeeOther) })
	read := func(path string, h http.HandlerFunc) {
		views := s.m.pages.WithLabelValues(path)
		mux.Handle("GET "+path, s.readGate(func(w http.ResponseWriter, r *http.Request) { views.Inc(); h(w, r) }))
	}
	read("/cluster", s.clusterPage)
	read("/subjects", s.subjectsPage)
	read("/groups", s.groupsPage)
	read("/messages", s.messagesPage)
	read("/messages/detail", s.detailPage)
	read("/deadletters", s.deadPage)
	read("/delay", s.delayPage)
	read("/watchdog", s.watchdogPage)
	write := func(path string, h writeHandler) { mux.Handle("POST "+path, s.writeGate(path, h)) }
	write("/actions/reset", s.resetOffset)
	write("/actions/readonly", s.readonly)
	write("/actions/offline", s.forceOffline)
	write("/actions/resend", s.resend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "error", errorPage{Title: "Not found", Message: fmt.Sprintf("No page %s here.", r.URL.Path)})
	})
	return securityHeaders(mux)
}

// securityHeaders forbid framing and inline scripts: the pages need none.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}
