package netlimits

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// DefaultIdleTimeout is tcp.idle.timeout.ms: far above every periodic
// request of QMQ peers (consumer heartbeats and broker heartbeats every
// 10 s, route refreshes every 60 s); a request in flight, such as a long
// poll, keeps a connection open whatever its length.
const DefaultIdleTimeout = 5 * time.Minute

// Settings are the limits of a service's TCP (QMQ protocol) and HTTP ports.
type Settings struct {
	MaxConnections     int           // max.connections: TCP port
	IdleTimeout        time.Duration // tcp.idle.timeout.ms: 0 = never
	FrameReadTimeout   time.Duration // frame.read.timeout.ms
	MemoryBudget       int64         // frame.memory.budget.bytes
	HTTPMaxConnections int           // http.max.connections
	HTTPReadTimeout    time.Duration // http.read.timeout.ms: a whole request, body included
	HTTPIdleTimeout    time.Duration // http.idle.timeout.ms: a keep-alive connection between requests
}

// DefaultSettings are the limits' defaults for a port whose max.frame.size
// is maxFrameSize: the memory budget is four such frames.
func DefaultSettings(maxFrameSize int) Settings {
	return Settings{
		MaxConnections:     remoting.DefaultMaxConnections,
		IdleTimeout:        DefaultIdleTimeout,
		FrameReadTimeout:   remoting.DefaultFrameReadTimeout,
		MemoryBudget:       4 * minFrame(maxFrameSize),
		HTTPMaxConnections: httpguard.DefaultMaxConnections,
		HTTPReadTimeout:    httpguard.DefaultReadTimeout,
		HTTPIdleTimeout:    httpguard.DefaultIdleTimeout,
	}
}

func minFrame(maxFrameSize int) int64 { return int64(max(maxFrameSize, 1<<10)) }

// Read reads the limit keys; maxFrameSize is the port's max.frame.size:
// the memory budget defaults to four such frames and may not be smaller
// than one.
func Read(r *conf.Reader, maxFrameSize int) Settings {
	d := DefaultSettings(maxFrameSize)
	return Settings{
		MaxConnections:     r.Int("max.connections", d.MaxConnections, 1, 1_000_000),
		IdleTimeout:        r.Millis("tcp.idle.timeout.ms", d.IdleTimeout, 0, 24*time.Hour),
		FrameReadTimeout:   r.Millis("frame.read.timeout.ms", d.FrameReadTimeout, 10*time.Millisecond, time.Hour),
		MemoryBudget:       r.Int64("frame.memory.budget.bytes", d.MemoryBudget, minFrame(maxFrameSize), 1<<40),
		HTTPMaxConnections: r.Int("http.max.connections", d.HTTPMaxConnections, 1, 1_000_000),
		HTTPReadTimeout:    r.Millis("http.read.timeout.ms", d.HTTPReadTimeout, 100*time.Millisecond, time.Hour),
		HTTPIdleTimeout:    r.Millis("http.idle.timeout.ms", d.HTTPIdleTimeout, 100*time.Millisecond, time.Hour),
	}
}

// Validate checks the limits a remoting or HTTP server cannot run with (a
// zero there would otherwise silently mean "the default" or "none"), one
// error per problem, naming the key; maxFrameSize is the port's
// max.frame.size.
func (l Settings) Validate(maxFrameSize int) []error {
	var errs []error
	if l.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("max.connections=%d: want at least 1", l.MaxConnections))
	}
	if l.HTTPMaxConnections < 1 {
		errs = append(errs, fmt.Errorf("http.max.connections=%d: want at least 1", l.HTTPMaxConnections))
	}
	if l.MemoryBudget < int64(maxFrameSize) {
		errs = append(errs, fmt.Errorf("frame.memory.budget.bytes=%d is smaller than max.frame.size=%d: a largest frame could never be read; raise it (default: four frames)", l.MemoryBudget, maxFrameSize))
	}
	if l.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("tcp.idle.timeout.ms=%d: want 0 (never) or more", l.IdleTimeout.Milliseconds()))
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"frame.read.timeout.ms", l.FrameReadTimeout}, {"http.read.timeout.ms", l.HTTPReadTimeout}, {"http.idle.timeout.ms", l.HTTPIdleTimeout}} {
		if t.d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%d: want a positive number of milliseconds (start from DefaultSettings for the defaults)", t.key, t.d.Milliseconds()))
		}
	}
	return errs
}

// Apply sets the TCP limits of cfg.
func (s Settings) Apply(cfg *remoting.ServerConfig) {
	cfg.MaxConnections = s.MaxConnections
	cfg.IdleTimeout = s.IdleTimeout
	cfg.FrameReadTimeout = s.FrameReadTimeout
	cfg.MemoryBudget = s.MemoryBudget
}

// HTTP is the httpguard configuration of the HTTP port.
func (s Settings) HTTP(log hclog.Logger) httpguard.Config {
	// The header timeout is the request's when that is shorter: a client
	// must not get longer for its headers than for its whole request.
	return httpguard.Config{MaxConnections: s.HTTPMaxConnections, Logger: log, ReadTimeout: s.HTTPReadTimeout,
		ReadHeaderTimeout: min(s.HTTPReadTimeout, httpguard.DefaultReadHeaderTimeout), IdleTimeout: s.HTTPIdleTimeout}
}

// Collectors export the limits' counters of tcp and, if not nil, http
// as <prefix>_tcp_… and <prefix>_http_… series.
func Collectors(prefix string, tcp *remoting.Server, http *httpguard.Listener) []prometheus.Collector {
	counter := func(name, help string, f func(remoting.ServerStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: prefix + name, Help: help},
			func() float64 { return float64(f(tcp.Stats())) })
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_tcp_connections", Help: "Connections open on the TCP port."},
			func() float64 { return float64(tcp.Stats().Connections) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_tcp_frame_buffered_bytes", Help: "Request body bytes held (read or being read, not yet served), bounded by frame.memory.budget.bytes."},
			func() float64 { return float64(tcp.Stats().BufferedBytes) }),
		counter("_tcp_connections_refused_total", "TCP connections closed at once because max.connections were open.",
			func(s remoting.ServerStats) uint64 { return s.Refused }),
		counter("_tcp_idle_closed_total", "TCP connections closed after tcp.idle.timeout.ms without a request.",
			func(s remoting.ServerStats) uint64 { return s.IdleClosed }),
		counter("_tcp_frame_timeouts_total", "TCP connections closed because a frame did not arrive within frame.read.timeout.ms.",
			func(s remoting.ServerStats) uint64 { return s.FrameTimeouts }),
		counter("_tcp_frame_budget_refused_total", "TCP connections closed because their frame found no room in frame.memory.budget.bytes in time.",
			func(s remoting.ServerStats) uint64 { return s.BudgetRefused }),
	}
	if http != nil {
		cs = append(cs,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: prefix + "_http_connections_refused_total", Help: "HTTP connections answered 503 because http.max.connections were open."},
				func() float64 { return float64(http.Refused()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "_http_connections", Help: "Connections open on the HTTP port."},
				func() float64 { return float64(http.Open()) }))
	}
	return cs
}
