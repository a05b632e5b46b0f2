package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/loadgen"
	"github.com/qmq-go/qmq/protocol"
	backupsvc "github.com/qmq-go/qmq/services/backup"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/delay"
	"github.com/qmq-go/qmq/services/metaserver"
	"github.com/qmq-go/qmq/services/watchdog"
	"github.com/qmq-go/qmq/storage/consumerlog"
)

// devGroup is the broker group `qmq dev` registers; devDelayGroup its
// delay group.
const (
	devGroup      = "dev_group"
	devDelayGroup = "dev_delay"
)

// runDev starts a metaserver (embedded SQLite) and one broker master in this
// process, registering the broker automatically, so that a newcomer has a
// working queue with one command. Data and generated config live under --data.
func runDev(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmq dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data/dev", "directory for the metaserver database, broker logs and generated config")
	metaHTTP := fs.Int("meta-http-port", 8080, "metaserver HTTP port (meta.server.discover.port)")
	metaTCP := fs.Int("meta-port", 20880, "metaserver TCP port (meta.server.port)")
	brokerPort := fs.Int("broker-port", 20881, "broker port (broker.port)")
	syncPort := fs.Int("sync-port", 0, "broker sync port (sync.port); 0 = broker port + 1")
	httpPort := fs.Int("broker-http-port", 0, "broker /health and /metrics port (broker.http.port); 0 = broker port + 2")
	delayPort := fs.Int("delay-port", 0, "delay server port (delay.properties broker.port; its sync.port is + 1, delay.http.port + 2); 0 = broker port - 80 (QMQ's 20801 with the default broker port), -1 = no delay server")
	withWatchdog := fs.Bool("watchdog", false, "also run a watchdog (namespace default) that resends transactional messages left in the client databases registered with qmq tools AddDb against this metaserver")
	watchdogPort := fs.Int("watchdog-http-port", 0, "the watchdog's /health and /metrics port (watchdog.http.port); 0 = broker port + 3")
	backupHTTP := fs.Int("backup-http", 8082, "the backup's port (backup.server.http.port: query API, /health, /metrics; QMQ's backup port); -1 = no backup")
	withSlave := fs.Bool("slave", false, "also run the group's slave (ports: broker port + 10, + 11 sync, + 12 http), with wait.slave.wrote=true")
	bind := fs.String("bind", "127.0.0.1", "IP address every port listens on (meta.server.bind.host, broker.bind.host); 0.0.0.0 opens them to other machines, with the admin token as the only guard")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	consoleAddr := fs.String("console", devConsoleDefault, "host:port of the web console (off: none)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (performance work)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	stopProfile, err := loadgen.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: --cpuprofile: %v\n", err)
		return 2
	}
	defer stopProfile()
	bindIP := net.ParseIP(*bind)
	if bindIP == nil {
		fmt.Fprintf(stderr, "qmq dev: --bind %q is not an IP address: give the address to listen on, e.g. --bind 127.0.0.1 (the default) or --bind 0.0.0.0 for every interface\n", *bind)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "dev", Level: hclog.LevelFromString(*logLevel), Output: stderr})
	confDir := filepath.Join(*data, "conf")
	if *syncPort == 0 {
		*syncPort = *brokerPort + 1
	}
	if *httpPort == 0 {
		*httpPort = *brokerPort + 2
	}
	ports := devPortSet{metaHTTP: *metaHTTP, metaTCP: *metaTCP, broker: *brokerPort, sync: *syncPort, http: *httpPort,
		bind: bindIP.String(), host: devHost(bindIP)}
	if *withSlave {
		ports.slave = *brokerPort + 10
	}
	if *backupHTTP > 0 {
		ports.backup = *backupHTTP
	}
	if *withWatchdog {
		ports.watchdog = *watchdogPort
		if ports.watchdog == 0 {
			ports.watchdog = *brokerPort + 3
		}
	}
	switch {
	case *delayPort == 0:
		ports.delay = *brokerPort - 80
	case *delayPort > 0:
		ports.delay = *delayPort
	}
	token, err := prepareDevConf(confDir, *data, ports)
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, stopTracing, err := setupTracing(ctx, "qmq-dev", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: %v\n", err)
		return 2
	}
	defer stopTracing()
	metaSettings, metaOpts, err := metaserver.LoadDir(confDir, conf.Lookup{}, log.Named("metaserver"))
	var meta *metaserver.Server
	if err == nil {
		meta, err = metaserver.New(ctx, metaSettings, metaOpts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: metaserver cannot start: %v\n", err)
		return 1
	}
	// The broker stops before the metaserver so that its OFFLINE reaches it.
	var metaWG sync.WaitGroup
	metaCtx, stopMeta := context.WithCancel(context.Background())
	defer stopMeta()
	metaWG.Add(1)
	go func() { defer metaWG.Done(); _ = meta.Run(metaCtx) }()

	hostname, _ := os.Hostname()
	members := []devMember{{role: 0, port: *brokerPort, sync: *syncPort, conf: confDir, name: "broker"}}
	if ports.slave != 0 {
		members = append(members, devMember{role: 1, port: ports.slave, sync: ports.slave + 1, conf: filepath.Join(*data, "conf-slave"), name: "slave"})
	}
	// Brokers stop before the metaserver so that their OFFLINE reaches it.
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	brokerDone := make(chan error, len(members))
	started := 0
	stopBrokers := func() {
		stopBroker()
		for range started {
			<-brokerDone
		}
		started = 0
	}
	// failStart stops what started and says which server could not start
	// (hint: how to run without it); launch runs a server until brokerCtx ends.
	failStart := func(what, hint string, err error) int {
		fmt.Fprintf(stderr, "qmq dev: %s cannot start: %v%s\n", what, err, hint)
		stopBrokers()
		stopMeta()
		metaWG.Wait()
		return 1
	}
	launch := func(r runnable) {
		go func() { brokerDone <- r.Run(brokerCtx) }()
		started++
	}
	for _, m := range members {
		err := devAddBroker(ctx, ports.host, *metaHTTP, token, hostname, m.role, m.port, m.sync)
		var b *broker.Server
		if err == nil {
			b, err = newDevBroker(ctx, m.conf, log.Named(m.name), hostname, tp)
		}
		if err != nil {
			return failStart(m.name, "", err)
		}
		launch(b)
	}
	if ports.delay != 0 {
		err := devAddGroup(ctx, ports.host, *metaHTTP, token, devDelayGroup, hostname, int(protocol.RoleDelayMaster), ports.delay, ports.delay+1)
		var d *delay.Server
		if err == nil {
			d, err = newDevDelay(ctx, confDir, log.Named("delay"), hostname, tp)
		}
		if err != nil {
			return failStart("delay server", " (--delay-port=-1 runs without it)", err)
		}
		launch(d)
	}
	if ports.backup != 0 {
		// Its row's servePort names it (broker.port = the HTTP port); the
		// row's syncPort is not listened on.
		err := devAddGroup(ctx, ports.host, *metaHTTP, token, devGroup, hostname, int(protocol.RoleBackup), ports.backup, ports.backup+1)
		var b *backupProcess
		if err == nil {
			b, err = newDevBackup(confDir, log.Named("backup"), hostname)
		}
		if err != nil {
			return failStart("backup", " (--backup-http=-1 runs without it)", err)
		}
		launch(b)
	}
	if ports.watchdog != 0 {
		w, err := newDevWatchdog(ctx, confDir, log.Named("watchdog"), tp)
		if err != nil {
			return failStart("watchdog", " (run qmq dev without --watchdog)", err)
		}
		launch(w)
	}
	consoleLine := ""
	if c := newDevConsole(*consoleAddr, ports, token, log.Named("console"), stderr); c != nil {
		launch(c)
		consoleLine = fmt.Sprintf("  console      %s\n", c.URL())
	}

	h := ports.host
	endpoint := fmt.Sprintf("http://%s/meta/address", net.JoinHostPort(h, strconv.Itoa(*metaHTTP)))
	delayLine, delayTry := "", ""
	if ports.delay != 0 {
		delayLine = fmt.Sprintf("  delay        %s  group %s  (health and metrics http://%s/health, /metrics)\n",
			hostPort(h, ports.delay), devDelayGroup, hostPort(h, ports.delay+2))
		delayTry = fmt.Sprintf("  qmq send --meta %s --subject hello --body \"later\" --delay 10s\n", endpoint)
	}
	if ports.backup != 0 {
		delayLine += fmt.Sprintf("  backup       http://%s  group %s  (queries /api/message?backupQuery={\"subject\":\"hello\",\"len\":20}, /api/message/records, /api/message/dead; /health, /metrics)\n",
			hostPort(h, ports.backup), devGroup)
	}
	// The servers first, then how to reach them, then what to try: the
	// console's line comes after the token's (tests read up to it).
	more := ""
	if ports.watchdog != 0 {
		more += fmt.Sprintf("  watchdog     namespace default, scans the databases of qmq tools AddDb --metaserver=%s every %s  (http://%s/health, /metrics)\n",
			hostPort(h, *metaHTTP), devWatchdogCheck, hostPort(h, ports.watchdog))
	}
	if ports.slave != 0 {
		more += fmt.Sprintf("  slave        %s  group %s  (http://%s/health); the master answers sends once the slave wrote them (wait.slave.wrote=true)\n",
			hostPort(h, ports.slave), devGroup, hostPort(h, ports.slave+2))
	}
	fmt.Fprintf(stdout, `qmq dev is running (data in %s; Ctrl-C stops it, a restart keeps the data; ports listen on %s)
  metaserver   http://%s  (tcp %d)
  broker       %s  group %s  (health and metrics http://%s/health, /metrics)
%s%s  meta.server.endpoint=%s
  admin token  %s   (qmq tools ListBrokers --metaserver=%s)
%sTry:
  qmq consume --meta %s --subject hello --group g1
  qmq send --meta %s --subject hello --body "hi"
%s`, *data, ports.bind, hostPort(h, *metaHTTP), *metaTCP, hostPort(h, *brokerPort), devGroup, hostPort(h, *httpPort), delayLine, more, endpoint, token, hostPort(h, *metaHTTP), consoleLine, endpoint, endpoint, delayTry)

	select {
	case <-ctx.Done():
	case err := <-brokerDone:
		started--
		if err != nil {
			fmt.Fprintf(stderr, "qmq dev: a broker stopped: %v\n", err)
		}
	}
	stopBrokers()
	stopMeta()
	metaWG.Wait()
	return 0
}

// devPortSet are qmq dev's ports; slave is 0 without --slave. Every port
// listens on bind; host is the address registered and printed.
type devPortSet struct {
	metaHTTP, metaTCP, broker, sync, http, slave int
	delay                                        int // 0: no delay server
	watchdog                                     int // watchdog.http.port; 0: no watchdog
	backup                                       int // backup.server.http.port; 0: no backup
	bind, host                                   string
}

// devHost is the address clients use for a server listening on bind: bind
// itself, or loopback when it listens on every interface (what qmq dev
// always advertised; other machines then pass their own meta.server.endpoint).
func devHost(bind net.IP) string {
	if bind.IsUnspecified() {
		return "127.0.0.1"
	}
	return bind.String()
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// devMember is one broker of the dev group.
type devMember struct {
	role, port, sync int
	conf, name       string
}

// prepareDevConf writes the dev config once (later runs reuse it, token included).
func prepareDevConf(confDir, data string, p devPortSet) (string, error) {
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(confDir, metaserver.FileTokens)
	tf, err := conf.LoadFile(confDir, metaserver.FileTokens)
	if err != nil {
		return "", err
	}
	token := ""
	for _, k := range tf.Keys() {
		token = k
	}
	if token == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		token = hex.EncodeToString(b)
		if err := os.WriteFile(tokenFile, []byte("# generated by qmq dev\n"+token+"=dev\n"), 0o600); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(data)
	if err != nil {
		return "", err
	}
	// The pair authenticates its replication with a secret generated once,
	// like the admin token: a dev setup is as safe as a deployed one.
	secretFile := filepath.Join(confDir, "sync.secret")
	if p.slave != 0 {
		if _, err := os.Stat(secretFile); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 24)
			_, _ = rand.Read(b)
			if err := os.WriteFile(secretFile, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("writing the replication secret: %w", err)
			}
		}
	}
	brokerConf := func(port, sync, http int, root string) string {
		s := fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.endpoint=http://%s/meta/address\nbroker.port=%d\nsync.port=%d\nbroker.http.port=%d\nstore.root=%s\nbroker.advertise.ip=%s\nbroker.bind.host=%s\n",
			hostPort(p.host, p.metaHTTP), port, sync, http, filepath.Join(abs, root), p.host, p.bind)
		// Small segments: the defaults (QMQ's) preallocate 1 GiB of message log
		// and 100 MiB of action log per broker on the first message, which a
		// laptop notices; these keep a fresh dev setup under 100 MiB (README).
		s += devStorageConf
		if p.slave != 0 {
			s += "wait.slave.wrote=true\nsync.secret.file=" + secretFile + "\n"
			// Master and slave share this process's descriptor limit.
			s += fmt.Sprintf("consumerlog.max.open=%d\n", consumerlog.DefaultMaxOpenLogs(2))
		}
		return s
	}
	files := map[string]string{
		filepath.Join(confDir, metaserver.FileMetaserver): fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.discover.port=%d\nmeta.server.port=%d\nmin.group.num=1\nstore.root=%s\nmeta.server.advertise.ip=%s\nmeta.server.bind.host=%s\n",
			p.metaHTTP, p.metaTCP, filepath.Join(abs, "meta"), p.host, p.bind),
		filepath.Join(confDir, broker.FileBroker): brokerConf(p.broker, p.sync, p.http, "broker"),
	}
	if p.delay != 0 {
		// Small message-log segments, as for the broker (per.segment.file.size).
		files[filepath.Join(confDir, delay.FileDelay)] = fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.endpoint=http://%s/meta/address\nbroker.port=%d\nsync.port=%d\ndelay.http.port=%d\nstore.root=%s\ndelay.advertise.ip=%s\ndelay.bind.host=%s\nper.segment.file.size=16777216\n",
			hostPort(p.host, p.metaHTTP), p.delay, p.delay+1, p.delay+2, filepath.Join(abs, "delay"), p.host, p.bind)
		// The same delay.admin.secret on both sides: qmq tools CancelDelay works.
		secret, err := devDelayAdminSecret(confDir)
		if err != nil {
			return "", err
		}
		for _, f := range []string{metaserver.FileMetaserver, delay.FileDelay} {
			files[filepath.Join(confDir, f)] += "delay.admin.secret.file=" + secret + "\n"
		}
	}
	if p.backup != 0 {
		// It follows the slave, or the master without --slave; it keeps
		// every message's content, so that details and resends work in dev.
		b := fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.endpoint=http://%s/meta/address\nbroker.port=%d\nbackup.server.http.port=%d\nbackup.bind.host=%s\nstore.root=%s\nbackup.message.content=true\nbackup.admin.token=%s\n",
			hostPort(p.host, p.metaHTTP), p.backup, p.backup, p.bind, filepath.Join(abs, "backup"), token)
		if p.slave != 0 {
			b += "sync.secret.file=" + secretFile + "\n"
		}
		files[filepath.Join(confDir, backupsvc.FileBackup)] = b
	}
	if p.watchdog != 0 {
		// The watchdog reads the metaserver's SQLite database (store.root is
		// the metaserver's) for the election and datasource_config.
		files[filepath.Join(confDir, watchdog.FileWatchdog)] = fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nappCode=qmq-dev-watchdog\nnamespace=default\nmeta.server.endpoint=http://%s/meta/address\n"+
			"# rows untouched for this long are resent (QMQ's default is 60000; shorter in dev to see it happen)\ncheckInterval=%d\nrefreshInterval=%d\nstore.root=%s\nwatchdog.http.port=%d\nwatchdog.bind.host=%s\n",
			hostPort(p.host, p.metaHTTP), devWatchdogCheck.Milliseconds(), devWatchdogCheck.Milliseconds(), filepath.Join(abs, "meta"), p.watchdog, p.bind)
	}
	if p.slave != 0 {
		slaveDir := filepath.Join(data, "conf-slave")
		if err := os.MkdirAll(slaveDir, 0o755); err != nil {
			return "", err
		}
		files[filepath.Join(slaveDir, broker.FileBroker)] = brokerConf(p.slave, p.slave+1, p.slave+2, "slave")
	}
	for path, body := range files {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return token, nil
}

// devStorageConf are qmq dev's storage sizes (per broker): 64 MiB message-log
// and 16 MiB action-log segments, preallocated when first written, and
// consumer-log segments of 100,000 entries (sparse files of 2.2 MB apparent
// size). Segments already on disk keep their size.
const devStorageConf = "messagelog.segment.size=67108864\nactionlog.segment.size=16777216\nconsumerlog.segment.units=100000\n"

// devAddBroker registers this host's broker as master (role 0) or slave (1)
// of devGroup before every start, with AddBroker's ifAbsent: the row of an
// earlier run is a success, not a logged refusal.
func devAddBroker(ctx context.Context, host string, metaHTTP int, token, hostname string, role, port, syncPort int) error {
	return devAddGroup(ctx, host, metaHTTP, token, devGroup, hostname, role, port, syncPort)
}

// devAddGroup registers this host's server as role of group (ifAbsent).
func devAddGroup(ctx context.Context, host string, metaHTTP int, token, group, hostname string, role, port, syncPort int) error {
	form := url.Values{"action": {"AddBroker"}, "brokerGroup": {group}, "role": {fmt.Sprint(role)}, "hostname": {hostname},
		"ip": {host}, "servePort": {fmt.Sprint(port)}, "syncPort": {fmt.Sprint(syncPort)}, "ifAbsent": {"true"}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/management", hostPort(host, metaHTTP)), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	s := string(body)
	if strings.Contains(s, `"status":0`) {
		return nil
	}
	// Left: the ports differ from the run that wrote this --data's metaserver.
	return fmt.Errorf("metaserver refused: %s; the ports must be those of the earlier runs on this --data directory (or use a new --data)", strings.TrimSpace(s))
}

// newDevBroker builds a broker from the broker.properties qmq dev wrote (and
// the user may have edited) in dir.
func newDevBroker(ctx context.Context, dir string, log hclog.Logger, hostname string, tp trace.TracerProvider) (*broker.Server, error) {
	settings, keys, err := broker.LoadSettings(dir, conf.Lookup{})
	if err != nil {
		return nil, err
	}
	keys.Log(log)
	return broker.New(ctx, settings, broker.Options{Logger: log, Hostname: hostname, TracerProvider: tp})
}

// newDevDelay builds the delay server from the delay.properties qmq dev
// wrote (and the user may have edited) in dir.
func newDevDelay(ctx context.Context, dir string, log hclog.Logger, hostname string, tp trace.TracerProvider) (*delay.Server, error) {
	settings, keys, err := delay.LoadSettings(dir, conf.Lookup{})
	if err != nil {
		return nil, err
	}
	keys.Log(log)
	return delay.New(ctx, settings, delay.Options{Logger: log, Hostname: hostname, TracerProvider: tp})
}

// newDevBackup builds the backup from the backup.properties qmq dev wrote
// (and the user may have edited) in dir.
func newDevBackup(dir string, log hclog.Logger, hostname string) (*backupProcess, error) {
	settings, keys, err := backupsvc.LoadSettings(dir, conf.Lookup{})
	if err != nil {
		return nil, err
	}
	keys.Log(log)
	return startBackup(settings, hostname, log)
}

// devWatchdogCheck is the dev watchdog's checkInterval and refreshInterval:
// a row is resent about 10 s after the application left it, and an AddDb
// is picked up as soon.
const devWatchdogCheck = 10 * time.Second

// newDevWatchdog builds the watchdog from the watchdog.properties qmq dev
// wrote (and the user may have edited) in dir.
func newDevWatchdog(ctx context.Context, dir string, log hclog.Logger, tp trace.TracerProvider) (*watchdog.Server, error) {
	settings, keys, err := watchdog.LoadSettings(dir, conf.Lookup{})
	if err != nil {
		return nil, err
	}
	keys.Log(log)
	return watchdog.New(ctx, settings, watchdog.Options{Logger: log, TracerProvider: tp})
}
