package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/services/metaserver"
)

// devGroup is the broker group `qmq dev` registers.
const devGroup = "dev_group"

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
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (performance work)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "qmq dev: --cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "qmq dev: --cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "dev", Level: hclog.LevelFromString(*logLevel), Output: stderr})
	confDir := filepath.Join(*data, "conf")
	if *syncPort == 0 {
		*syncPort = *brokerPort + 1
	}
	if *httpPort == 0 {
		*httpPort = *brokerPort + 2
	}
	token, err := prepareDevConf(confDir, *data, *metaHTTP, *metaTCP, *brokerPort, *syncPort, *httpPort)
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	meta, err := metaserver.New(ctx, metaserver.Options{ConfDir: confDir, Logger: log.Named("metaserver")})
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
	if err := devAddBroker(ctx, *metaHTTP, token, hostname, *brokerPort, *syncPort); err != nil {
		fmt.Fprintf(stderr, "qmq dev: register the broker: %v\n", err)
		stopMeta()
		metaWG.Wait()
		return 1
	}
	b, err := broker.New(ctx, broker.Options{ConfDir: confDir, Logger: log.Named("broker"), Hostname: hostname})
	if err != nil {
		fmt.Fprintf(stderr, "qmq dev: broker cannot start: %v\n", err)
		stopMeta()
		metaWG.Wait()
		return 1
	}
	brokerDone := make(chan error, 1)
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	go func() { brokerDone <- b.Run(brokerCtx) }()

	endpoint := fmt.Sprintf("http://127.0.0.1:%d/meta/address", *metaHTTP)
	fmt.Fprintf(stdout, `qmq dev is running (data in %s; Ctrl-C stops it, a restart keeps the data)
  metaserver   http://127.0.0.1:%d  (tcp %d)
  broker       127.0.0.1:%d  group %s  (health and metrics http://127.0.0.1:%d/health, /metrics)
  meta.server.endpoint=%s
  admin token  %s   (qmq tools ListBrokers --metaserver=127.0.0.1:%d)
Try:
  qmq consume --meta %s --subject hello --group g1
  qmq send --meta %s --subject hello --body "hi"
`, *data, *metaHTTP, *metaTCP, *brokerPort, devGroup, *httpPort, endpoint, token, *metaHTTP, endpoint, endpoint)

	select {
	case <-ctx.Done():
		stopBroker()
		<-brokerDone
	case err := <-brokerDone:
		if err != nil {
			fmt.Fprintf(stderr, "qmq dev: broker stopped: %v\n", err)
		}
	}
	stopMeta()
	metaWG.Wait()
	return 0
}

// prepareDevConf writes the dev config once (later runs reuse it, token included).
func prepareDevConf(confDir, data string, metaHTTP, metaTCP, brokerPort, syncPort, httpPort int) (string, error) {
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
	files := map[string]string{
		metaserver.FileMetaserver: fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.discover.port=%d\nmeta.server.port=%d\nmin.group.num=1\nstore.root=%s\nmeta.server.advertise.ip=127.0.0.1\n",
			metaHTTP, metaTCP, filepath.Join(abs, "meta")),
		"broker.properties": fmt.Sprintf("# generated by qmq dev (rewritten on every start)\nmeta.server.endpoint=http://127.0.0.1:%d/meta/address\nbroker.port=%d\nsync.port=%d\nbroker.http.port=%d\nstore.root=%s\nbroker.advertise.ip=127.0.0.1\n",
			metaHTTP, brokerPort, syncPort, httpPort, filepath.Join(abs, "broker")),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(confDir, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return token, nil
}

// devAddBroker registers this host's broker as master of devGroup; an existing row is fine.
func devAddBroker(ctx context.Context, metaHTTP int, token, hostname string, port, syncPort int) error {
	form := url.Values{"action": {"AddBroker"}, "brokerGroup": {devGroup}, "role": {"0"}, "hostname": {hostname},
		"ip": {"127.0.0.1"}, "servePort": {fmt.Sprint(port)}, "syncPort": {fmt.Sprint(syncPort)}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/management", metaHTTP), strings.NewReader(form.Encode()))
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
	if strings.Contains(s, `"status":0`) || strings.Contains(s, "already exists") || strings.Contains(s, "already added") {
		return nil
	}
	return fmt.Errorf("metaserver refused: %s", strings.TrimSpace(s))
}
