package console

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/qmq-go/qmq/internal/httpguard"
)

// FileConsole is the console's configuration file.
const FileConsole = "console.properties"

// Settings configure a console. Build them with DefaultSettings and change
// what differs; LoadSettings reads them from console.properties.
type Settings struct {
	// Listen is host:port the console serves on (console.bind.host,
	// console.port; port 0 = a free port).
	Listen string
	// MetaHTTP is the metaserver's HTTP address (host:port), as
	// `qmq tools --metaserver` takes it.
	MetaHTTP string
	// BackupHTTP are the backup services' HTTP addresses (host:port); the
	// first that answers is used. Empty: the message pages say the backup is
	// not configured.
	BackupHTTP []string
	// BackupResendPath is the backup's POST endpoint that resends a dead
	// letter (form: subject, brokerGroup, sequence, consumerGroup).
	BackupResendPath string
	// BackupToken is the X-Api-Token sent with a resend (the backup's
	// backup.admin.token); "" passes on the caller's admin token.
	BackupToken string
	// Tokens are the admin tokens (valid-api-tokens.properties): token →
	// its description, which is logged as who made a change.
	Tokens map[string]string
	// OpenReads lets anyone read every page; false asks for a token first.
	OpenReads bool
	// BrokerHTTPPorts maps "ip:servePort" of a broker or delay server to
	// its HTTP port (broker.http.port / delay.http.port); servers not in it
	// are found through Consul when Consul is set (the http_port meta of
	// their registration), else taken to serve HTTP at servePort +
	// BrokerHTTPOffset.
	BrokerHTTPPorts  map[string]int
	BrokerHTTPOffset int
	// WatchdogHTTP are the watchdogs' HTTP addresses (host:port).
	WatchdogHTTP []string
	// Consul, if set, is the Consul agent's HTTP address (host:port) whose
	// health checks the cluster page shows, and whose catalog says where
	// the brokers', delay servers' and backups' HTTP ports are.
	Consul string
	// FetchTimeout bounds each request to a metaserver, broker or backup.
	FetchTimeout time.Duration
	// Limits are the HTTP port's limits.
	Limits httpguard.Config
}

// DefaultSettings are the console's defaults: port 8090 on loopback, a
// metaserver at 127.0.0.1:8080, reads behind a token, brokers' HTTP port
// two above their serve port (qmq dev's layout).
func DefaultSettings() Settings {
	return Settings{
		Listen:           "127.0.0.1:8090",
		MetaHTTP:         "127.0.0.1:8080",
		BackupResendPath: "/api/message/dead/resend",
		Tokens:           map[string]string{},
		BrokerHTTPPorts:  map[string]int{},
		BrokerHTTPOffset: 2,
		FetchTimeout:     5 * time.Second,
	}
}

// Validate reports every setting that cannot work, with what to change.
func (s Settings) Validate() error {
	var errs []error
	hostPort := func(name, v string) {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%s %q is not host:port (e.g. 127.0.0.1:8080)", name, v))
		}
	}
	hostPort("console listen address", s.Listen)
	hostPort("metaserver HTTP address (console.metaserver.http)", s.MetaHTTP)
	for _, a := range s.BackupHTTP {
		hostPort("backup HTTP address (console.backup.http)", a)
	}
	for _, a := range s.WatchdogHTTP {
		hostPort("watchdog HTTP address (console.watchdog.http)", a)
	}
	if s.Consul != "" {
		hostPort("Consul address (consul.address)", s.Consul)
	}
	if !strings.HasPrefix(s.BackupResendPath, "/") {
		errs = append(errs, fmt.Errorf("console.backup.resend.path %q must start with /", s.BackupResendPath))
	}
	if s.FetchTimeout <= 0 {
		errs = append(errs, fmt.Errorf("console.fetch.timeout.ms must be positive, not %v", s.FetchTimeout))
	}
	if s.BrokerHTTPOffset < -1 || s.BrokerHTTPOffset > 1000 {
		errs = append(errs, fmt.Errorf("console.broker.http.offset %d: want -1 (unknown) to 1000", s.BrokerHTTPOffset))
	}
	if len(s.Tokens) == 0 && !s.OpenReads {
		errs = append(errs, errors.New("no admin token and console.read.open=false: nobody could use the console; add a token to valid-api-tokens.properties or set console.read.open=true"))
	}
	return errors.Join(errs...)
}
