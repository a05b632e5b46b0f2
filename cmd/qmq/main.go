// Command qmq is the single binary of qmq-go: one subcommand per component.
//
//	qmq dev [--data DIR]                              metaserver + broker + delay server + backup in one process
//	qmq metaserver [--conf DIR] [--set key=value]…   cluster registry and routing
//	qmq broker [--conf DIR] [--set key=value]…       real-time broker (master)
//	qmq delay [--conf DIR] [--set key=value]…        delay server (delay and scheduled messages)
//	qmq watchdog [--conf DIR] [--set key=value]…     resends transactional messages applications left behind
//	qmq console [--conf DIR] [--set key=value]…      web console (console.properties)
//	qmq backup [--conf DIR] [--set key=value]…       backup of a broker group: message index, consume records, dead letters
//	qmq send / qmq consume                           try the queue from a terminal
//	qmq tools <Command> --metaserver=host:port …     QMQ's tools.sh admin commands
//	qmq version                                       version and commit (also --version)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/cmd/qmq/tools"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/delay"
	"github.com/qmq-go/qmq/services/metaserver"
	"github.com/qmq-go/qmq/services/watchdog"
)

const usage = `qmq — QMQ message queue servers and tools, in Go.

Usage:
  qmq dev [--data DIR] [--bind IP] [--watchdog] [--backup-http PORT] [--console ADDR]   metaserver (SQLite) + broker + delay server + backup (+ watchdog) in one process on 127.0.0.1, registered automatically, console at http://127.0.0.1:8090/
  qmq metaserver [--conf DIR] [--set key=value]... [--log-level LEVEL]
  qmq broker [--conf DIR] [--set key=value]... [--log-level LEVEL]
  qmq delay [--conf DIR] [--set key=value]... [--log-level LEVEL]     (reads delay.properties)
  qmq watchdog [--conf DIR] [--set key=value]... [--log-level LEVEL]  (reads watchdog.properties and datasource.properties)
  qmq console [--conf DIR] [--set key=value]... [--log-level LEVEL]   web console (reads console.properties and valid-api-tokens.properties)
  qmq backup [--conf DIR] [--set key=value]... [--log-level LEVEL]    (reads backup.properties and hbase.properties)
  qmq send --meta URL --subject S [--count N] [--size B] [--tag T]... [--prop k=v]... [--body TEXT] [--delay D | --at RFC3339]
  qmq consume --meta URL --subject S --group G [--count N] [--broadcast] [--tag T]... [--tag-mode and|or] [--json]
  qmq bench --meta URL [--subjects N] [--size B] [--producers P] [--consumers C] [--duration D] [--rate R] [--mode produce|consume|e2e|all] [--json]
  qmq tools <Command> --metaserver=<host[:port]> [--token=<token>] [flags]   (qmq tools --help lists commands)
  qmq version                               the version and the commit it was built from (also --version)

Configuration keys and file names are QMQ's (metaserver.properties, datasource.properties, …).
Any key can be overridden with --set key=value or the environment variable QMQ_<KEY>
(upper case, dots as underscores, e.g. QMQ_MIN_GROUP_NUM=3).
`

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// serverGCPercent replaces Go's default GOGC=100 unless GOGC is set. A
// broker keeps little live heap (messages live in mmap'ed files, not on the
// heap) while allocating request and response buffers at the message rate,
// so with the default the collector runs dozens of times a second under
// load and every cycle hands pages back to the kernel, which zeroes them
// again on the next fault. 400 trades a few more MiB of heap for a fraction
// of that work.
const serverGCPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serverGCPercent)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "metaserver":
		return runMetaserver(args[1:], stderr)
	case "broker":
		return runBroker(args[1:], stderr)
	case "delay":
		return runDelay(args[1:], stderr)
	case "watchdog":
		return runWatchdog(args[1:], stderr)
	case "console":
		return runConsole(args[1:], stderr)
	case "backup":
		return runBackup(args[1:], stderr)
	case "dev":
		return runDev(args[1:], stdout, stderr)
	case "send":
		return runSend(args[1:], stdout, stderr)
	case "consume":
		return runConsume(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "tools":
		return tools.Main(args[1:], stdout, stderr)
	case "query":
		return runQuery(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, currentVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "qmq: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// stringList collects a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// serverFlags are shared by every server subcommand.
type serverFlags struct {
	confDir  string
	sets     stringList
	logLevel string
	logJSON  bool
}

func parseServerFlags(name string, args []string, stderr io.Writer) (*serverFlags, conf.Overrides, hclog.Logger, error) {
	fs := flag.NewFlagSet("qmq "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &serverFlags{}
	fs.StringVar(&f.confDir, "conf", "./conf", "directory holding QMQ's .properties files")
	fs.Var(&f.sets, "set", "override a configuration key: --set key=value (repeatable)")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log in JSON")
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("unexpected arguments %q (flags are --conf, --set, --log-level)", fs.Args())
	}
	o, err := conf.ParseSet(f.sets)
	if err != nil {
		return nil, nil, nil, err
	}
	level := hclog.LevelFromString(f.logLevel)
	if level == hclog.NoLevel {
		return nil, nil, nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", f.logLevel)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: name, Level: level, JSONFormat: f.logJSON, Output: stderr})
	return f, o, log, nil
}

// runnable is a server that serves until its context ends.
type runnable interface {
	Run(ctx context.Context) error
}

// runServer parses the shared server flags, builds the server with start and
// runs it until SIGINT/SIGTERM. Expected start-up failures (bad config, busy
// port, unreachable database) are printed as plain sentences, not as a log
// record with escaped newlines.
func runServer(name string, args []string, stderr io.Writer, start func(ctx context.Context, confDir string, o conf.Overrides, log hclog.Logger, tp trace.TracerProvider) (runnable, error)) int {
	f, o, log, err := parseServerFlags(name, args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "qmq %s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, stopTracing, err := setupTracing(ctx, "qmq-"+name, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "qmq %s: cannot start: %v\n", name, err)
		return 2
	}
	defer stopTracing()
	srv, err := start(ctx, f.confDir, o, log, tp)
	if err != nil {
		fmt.Fprintf(stderr, "qmq %s: cannot start: %v\n", name, err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "qmq %s: %v\n", name, err)
		return 1
	}
	return 0
}

func runMetaserver(args []string, stderr io.Writer) int {
	return runServer("metaserver", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger, _ trace.TracerProvider) (runnable, error) {
		settings, opts, err := metaserver.LoadDir(dir, conf.Lookup{Overrides: o}, log)
		if err != nil {
			return nil, err
		}
		return metaserver.New(ctx, settings, opts)
	})
}

func runBroker(args []string, stderr io.Writer) int {
	return runServer("broker", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger, tp trace.TracerProvider) (runnable, error) {
		settings, keys, err := broker.LoadSettings(dir, conf.Lookup{Overrides: o})
		if err != nil {
			return nil, err
		}
		keys.Log(log)
		return broker.New(ctx, settings, broker.Options{Logger: log, TracerProvider: tp})
	})
}

func runDelay(args []string, stderr io.Writer) int {
	return runServer("delay", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger, tp trace.TracerProvider) (runnable, error) {
		settings, keys, err := delay.LoadSettings(dir, conf.Lookup{Overrides: o})
		if err != nil {
			return nil, err
		}
		keys.Log(log)
		return delay.New(ctx, settings, delay.Options{Logger: log, TracerProvider: tp})
	})
}

func runWatchdog(args []string, stderr io.Writer) int {
	return runServer("watchdog", args, stderr, func(ctx context.Context, dir string, o conf.Overrides, log hclog.Logger, tp trace.TracerProvider) (runnable, error) {
		settings, keys, err := watchdog.LoadSettings(dir, conf.Lookup{Overrides: o})
		if err != nil {
			return nil, err
		}
		keys.Log(log)
		return watchdog.New(ctx, settings, watchdog.Options{Logger: log, TracerProvider: tp})
	})
}
