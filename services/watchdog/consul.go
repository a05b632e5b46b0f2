package watchdog

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/backoff"
)

// consulReg is the watchdog's Consul registration (ours), made when
// consul.address (or CONSUL_HTTP_ADDR) is set and the HTTP port is on:
// service consul.service.name (qmq-watchdog), tagged namespace:<ns>, with
// an HTTP check on /health. Registration is retried in the background;
// it is for operators and never stops the watchdog.
type consulReg struct {
	s    *Server
	done chan struct{}
	mu   sync.Mutex
	svc  *consul.Service
}

// registerConsul starts the registration goroutine; deregister stops it
// and removes the service.
func (s *Server) registerConsul(ctx context.Context) *consulReg {
	r := &consulReg{s: s, done: make(chan struct{})}
	if s.settings.ConsulAddress == "" || s.http == nil {
		close(r.done)
		return r
	}
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
	return r
}

func (r *consulReg) run(ctx context.Context) {
	s := r.s
	addr := s.http.ln.Addr().(*net.TCPAddr)
	host := s.settings.BindHost
	if host == "" || host == "0.0.0.0" {
		host = meta.OutboundIP(s.settings.ConsulAddress) // the IP the agent can reach
	}
	reg := consul.Registration{
		Name:                    s.settings.ConsulService,
		ID:                      s.settings.ConsulService + "-" + s.node,
		Address:                 host,
		Port:                    addr.Port,
		Tags:                    []string{"qmq", "watchdog", "namespace:" + s.settings.Namespace},
		Meta:                    map[string]string{"namespace": s.settings.Namespace, "node": s.node},
		CheckHTTP:               "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)) + "/health",
		DeregisterCriticalAfter: s.settings.ConsulDeregisterAfter,
	}
	b := backoff.Backoff{Min: time.Second, Max: time.Minute}
	logged := false
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		svc, err := consul.RegisterService(rctx, consul.Config{Address: s.settings.ConsulAddress, Token: s.settings.ConsulToken, Logger: s.log.Named("consul")}, reg)
		cancel()
		if err == nil {
			r.mu.Lock()
			r.svc = svc
			r.mu.Unlock()
			s.log.Info("registered in consul", "service", reg.Name, "id", reg.ID, "consul", s.settings.ConsulAddress)
			return
		}
		if !logged && ctx.Err() == nil {
			logged = true
			s.log.Error("consul registration failed; retrying in the background (the watchdog works without it)", "consul", s.settings.ConsulAddress, "error", err)
		}
		if b.Wait(ctx) != nil {
			return
		}
	}
}

// deregister waits for the registration goroutine (Run's context has
// ended) and removes the service.
func (r *consulReg) deregister() {
	<-r.done
	r.mu.Lock()
	svc := r.svc
	r.mu.Unlock()
	if svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Deregister(ctx); err != nil {
		r.s.log.Warn("consul deregistration failed; the agent removes the service once its check has been critical for consul.deregister.critical.after.ms", "error", err)
	}
}
