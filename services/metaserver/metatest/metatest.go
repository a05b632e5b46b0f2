// Package metatest runs a real metaserver in-process for other packages'
// tests (brokers, clients): embedded SQLite under a temp dir, free ports,
// stopped when the test ends. Brokers are registered the way an operator
// does it, through `qmq tools AddBroker`.
package metatest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/cmd/qmq/tools"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/metaserver"
)

// Token is the API token the test metaserver accepts.
const Token = "metatest-token-0123456789abcdef"

// DelayAdminSecret is the test metaserver's delay.admin.secret: delay
// servers with the same secret accept its CancelDelay requests.
const DelayAdminSecret = "metatest-delay-admin-secret-0123456789"

// Server is a running test metaserver.
type Server struct {
	*metaserver.Server
	t testing.TB
	// ConfDir is the server's temporary directory; its embedded store is
	// under data/. No configuration file is written there: the server is
	// built from metaserver.Settings.
	ConfDir string

	stop func() // cancels Run and waits for it, once
}

// Start runs a metaserver until t ends. log may be nil (silent).
func Start(t testing.TB, log hclog.Logger) *Server {
	t.Helper()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	dir := t.TempDir()
	settings := metaserver.DefaultSettings()
	settings.DiscoverPort, settings.ServerPort = 0, 0
	settings.RefreshPeriod = time.Second
	settings.StoreRoot = filepath.Join(dir, "data")
	settings.DelayAdminSecret = delayadmin.NewSecret(DelayAdminSecret)
	dyn := metaserver.DefaultDynamic()
	dyn.Tokens[Token] = "tests"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := metaserver.New(ctx, settings, metaserver.Options{Logger: log, Dynamic: dyn})
	if err != nil {
		cancel()
		t.Fatalf("start metaserver: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("metaserver did not stop within 15s")
			}
		})
	}
	t.Cleanup(stop)
	return &Server{Server: srv, t: t, ConfDir: dir, stop: stop}
}

// Stop stops the metaserver before the test ends (an outage); its ports
// then refuse connections.
func (s *Server) Stop() { s.stop() }

// HTTP is the loopback address of the HTTP port (what --metaserver takes).
func (s *Server) HTTP() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.HTTPAddr().(*net.TCPAddr).Port))
}

// TCP is the loopback address of the TCP port.
func (s *Server) TCP() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TCPAddr().(*net.TCPAddr).Port))
}

// Endpoint is the meta.server.endpoint brokers and clients use.
func (s *Server) Endpoint() string { return "http://" + s.HTTP() + "/meta/address" }

// AddBroker registers a broker (ip 127.0.0.1, syncPort servePort+1) with `qmq tools AddBroker`.
func (s *Server) AddBroker(group string, role int, hostname string, servePort int) {
	s.t.Helper()
	s.AddBrokerPorts(group, role, hostname, servePort, servePort+1)
}

// AddBrokerPorts is AddBroker with an explicit sync port (replication tests
// bind it).
func (s *Server) AddBrokerPorts(group string, role int, hostname string, servePort, syncPort int) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	code := tools.Main([]string{"AddBroker", "--metaserver=" + s.HTTP(), "--token=" + Token, "--brokerGroup=" + group,
		fmt.Sprintf("--role=%d", role), "--hostname=" + hostname, "--ip=127.0.0.1",
		fmt.Sprintf("--servePort=%d", servePort), fmt.Sprintf("--syncPort=%d", syncPort)}, &out, &errOut)
	if code != 0 {
		s.t.Fatalf("AddBroker %s: exit %d: %s %s", group, code, out.String(), errOut.String())
	}
}
