package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/lograte"
)

// Defaults of Config. No endpoint of ours streams or long-polls, so a
// response that takes a minute to write goes to a client that stopped
// reading; a request body is a form of a few parameters.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second // the whole request, body included
	DefaultWriteTimeout      = 60 * time.Second // from the end of the request headers to the end of the response
	DefaultIdleTimeout       = 2 * time.Minute  // a keep-alive connection between requests
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxParamBytes     = 4 << 10
	DefaultMaxConnections    = 1024
)

// Config are the limits of an HTTP server; zero values mean the defaults.
type Config struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	MaxBodyBytes      int64 // larger bodies are answered 413
	MaxParamBytes     int   // longer query or form values are answered 400
	MaxConnections    int   // more connections are answered 503 and closed
	Logger            hclog.Logger
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxParamBytes <= 0 {
		c.MaxParamBytes = DefaultMaxParamBytes
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
}

// Guard is a limited HTTP server: serve it with Server.Serve(Listener).
type Guard struct {
	Server   *http.Server
	Listener *Listener
}

// New wraps ln and h in cfg's limits.
func New(ln net.Listener, h http.Handler, cfg Config) *Guard {
	cfg.defaults()
	l := &Listener{Listener: ln, sem: make(chan struct{}, cfg.MaxConnections), log: cfg.Logger, refuseLog: lograte.Limiter{Interval: 5 * time.Second}}
	srv := &http.Server{
		Handler:           limitHandler(h, cfg),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	return &Guard{Server: srv, Listener: l}
}

// limitHandler refuses oversize bodies and over-long query parameters
// before h sees them, and bounds what h may read of a body.
func limitHandler(h http.Handler, cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > cfg.MaxBodyBytes {
			TooLarge(w, cfg.MaxBodyBytes)
			return
		}
		for name, vs := range r.URL.Query() {
			for _, v := range vs {
				if len(v) > cfg.MaxParamBytes {
					http.Error(w, fmt.Sprintf("parameter %s is %d bytes long; the limit is %d", Clip(name, 64), len(v), cfg.MaxParamBytes), http.StatusBadRequest)
					return
				}
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes)
		h.ServeHTTP(w, withParamLimit(r, cfg.MaxParamBytes))
	})
}

type paramLimitKey struct{}

func withParamLimit(r *http.Request, n int) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), paramLimitKey{}, n))
}

// ParseForm parses r's form (query and body) under the server's limits
// and, on a problem, answers it (413 for an oversize body, 400 for a bad
// form or an over-long value, never echoing the value) and returns false.
func ParseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			TooLarge(w, tooBig.Limit)
			return false
		}
		http.Error(w, "cannot parse the form: "+Clip(err.Error(), 200), http.StatusBadRequest)
		return false
	}
	limit, _ := r.Context().Value(paramLimitKey{}).(int)
	if limit <= 0 {
		limit = DefaultMaxParamBytes
	}
	for name, vs := range r.Form {
		for _, v := range vs {
			if len(v) > limit {
				http.Error(w, fmt.Sprintf("parameter %s is %d bytes long; the limit is %d", Clip(name, 64), len(v), limit), http.StatusBadRequest)
				return false
			}
		}
	}
	return true
}

// TooLarge answers 413 for a body over limit bytes.
func TooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("request body too large: the limit is %d bytes", limit), http.StatusRequestEntityTooLarge)
}

// Clip returns s if it is at most n bytes long, else its first n bytes
// (cut at a character boundary) and a note of its length: for echoing
// client input in answers and logs.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Listener limits the connections open at once: one more is answered 503
// and closed at once, logged (at most every 5 s) and counted.
type Listener struct {
	net.Listener
	sem     chan struct{}
	log     hclog.Logger
	refused atomic.Uint64

	refuseLog lograte.Limiter
}

// Refused is the number of connections refused so far.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Open is the number of connections open now.
func (l *Listener) Open() int { return len(l.sem) }

// Accept returns the next connection within the limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &conn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.refuse(c)
		}
	}
}

const refusalBody = "too many connections; try again shortly\n"

var refusal = fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(refusalBody), refusalBody)

func (l *Listener) refuse(c net.Conn) {
	n := l.refused.Add(1)
	l.refuseLog.Warn(l.log, "refusing HTTP connection: the port already has its maximum of open connections; raise http.max.connections if legitimate clients are refused",
		"remote", c.RemoteAddr().String(), "max_connections", cap(l.sem), "refused_total", n)
	now := time.Now()
	// Answer without blocking the accept loop: the write goes to the
	// socket buffer, the deadline covers a peer that never reads.
	c.SetWriteDeadline(now.Add(time.Second))
	_, _ = c.Write([]byte(refusal))
	c.Close()
}

// conn gives its slot back once closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
