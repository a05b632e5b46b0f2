package main

import (
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/services/console"
)

// devConsoleDefault is where qmq dev serves the console unless --console
// says otherwise ("off" turns it off).
const devConsoleDefault = "127.0.0.1:8090"

// newDevConsole builds the console of a qmq dev run: reads open (the
// console listens on loopback by default), writes with the dev admin token,
// brokers' and the delay server's HTTP ports two above their serve ports
// (qmq dev's layout). A port in use is a warning, not a failed start: the
// queue is what qmq dev is for. Returns nil when there is no console.
func newDevConsole(listen string, p devPortSet, token string, log hclog.Logger, stderr io.Writer) *console.Server {
	if listen == "" || listen == "off" {
		return nil
	}
	s := console.DefaultSettings()
	s.Listen, s.MetaHTTP, s.OpenReads = listen, hostPort(p.host, p.metaHTTP), true
	s.Tokens = map[string]string{token: "dev"}
	if p.backup != 0 {
		// The dev backup's backup.admin.token is the dev admin token, which
		// the console passes on with a resend.
		s.BackupHTTP = []string{hostPort(p.host, p.backup)}
	}
	// The HTTP ports as qmq dev chose them (--broker-http-port may differ
	// from the default offset).
	s.BrokerHTTPPorts[hostPort(p.host, p.broker)] = p.http
	if p.delay != 0 {
		s.BrokerHTTPPorts[hostPort(p.host, p.delay)] = p.delay + 2
	}
	if p.slave != 0 {
		s.BrokerHTTPPorts[hostPort(p.host, p.slave)] = p.slave + 2
	}
	if p.watchdog != 0 {
		s.WatchdogHTTP = []string{hostPort(p.host, p.watchdog)}
	}
	c, err := console.New(s, console.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: the console is not served: %v (--console=127.0.0.1:PORT picks another port, --console=off none)\n", err)
		return nil
	}
	return c
}
