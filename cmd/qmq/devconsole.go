package main

import (
	"fmt"
	"io"
	"net"
	"strconv"

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
func newDevConsole(listen string, metaHTTP string, token string, watchdogHTTP string, backupHTTP []string, log hclog.Logger, stderr io.Writer) *console.Server {
	if listen == "" || listen == "off" {
		return nil
	}
	s := console.DefaultSettings()
	s.Listen, s.MetaHTTP, s.OpenReads = listen, metaHTTP, true
	s.Tokens = map[string]string{token: "dev"}
	s.BackupHTTP = backupHTTP
	if watchdogHTTP != "" {
		s.WatchdogHTTP = []string{watchdogHTTP}
	}
	c, err := console.New(s, console.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: the console is not served: %v (--console=127.0.0.1:PORT picks another port, --console=off none)\n", err)
		return nil
	}
	return c
}

// devWatchdogHTTP is the watchdog's HTTP address for the console, "" without one.
func devWatchdogHTTP(host string, port int) string {
	if port == 0 {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
