package httpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ops describes a component's operations port: /health for operators and
// checks, /metrics for Prometheus, a 404 naming both for anything else.
// The broker, the delay server and the watchdog serve the same set.
type Ops struct {
	Addr    string // host:port to listen on
	Key     string // the port's configuration key, for the error, e.g. "delay.http.port"
	Port    int    // its value
	File    string // the file that sets it, e.g. "delay.properties"
	Who     string // the component, for the 404: "the delay server"
	Health  http.HandlerFunc
	Metrics prometheus.Gatherer
	// Extra are further read-only endpoints by path (the broker's
	// /consumers for the console); the 404 names them too.
	Extra map[string]http.HandlerFunc
	Guard Config
}

// ListenOps binds o.Addr and builds the guarded server of o's endpoints.
// A port in use is explained with the key to change.
func ListenOps(o Ops) (*Guard, error) {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %d (/health and /metrics): %w; is another process using it? change %s in %s, or set it to -1 to turn it off",
			o.Key, o.Port, err, o.Key, o.File)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", o.Health)
	mux.Handle("/metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{}))
	served := "/health and /metrics"
	for path, h := range o.Extra {
		mux.HandleFunc(path, h)
		served = path + ", " + served
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("no such endpoint %s; %s serves %s", r.URL.Path, o.Who, served), http.StatusNotFound)
	})
	return New(ln, mux, o.Guard), nil
}

// Serve serves srv on ln until ctx ends, then shuts it down, letting
// requests in flight finish for up to 5 s.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}
