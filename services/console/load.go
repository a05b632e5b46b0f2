package console

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/conf"
)

// FileTokens is QMQ's admin token file, shared with the metaserver: one
// line per token, token=description.
const FileTokens = "valid-api-tokens.properties"

// LoadSettings reads console.properties in dir (and the token file it
// names, by default valid-api-tokens.properties beside it) with the
// overrides and environment of l onto DefaultSettings, and validates the
// result. The report lists keys of the file that no setting reads.
func LoadSettings(dir string, l conf.Lookup) (Settings, conf.KeyReport, error) {
	s, r, err := readSettings(dir, l)
	if err != nil {
		return Settings{}, conf.KeyReport{}, err
	}
	report, err := conf.CheckKeys(l.Overrides, r)
	if err != nil {
		return Settings{}, conf.KeyReport{}, fmt.Errorf("invalid configuration for the console:\n%w", err)
	}
	return s, report, nil
}

// KnownKeys returns the reader of console.properties in dir: every key the
// console reads, with its kind and default (for generated docs).
func KnownKeys(dir string) (*conf.Reader, error) {
	_, r, err := readSettings(dir, conf.Lookup{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, fmt.Errorf("read the console's keys from %s: %w", dir, err)
	}
	return r, nil
}

func readSettings(dir string, l conf.Lookup) (Settings, *conf.Reader, error) {
	f, err := conf.LoadFile(dir, FileConsole)
	if err != nil {
		return Settings{}, nil, err
	}
	r := conf.NewReader(f, l)
	d := DefaultSettings()
	_, defPort, _ := net.SplitHostPort(d.Listen)
	defHost, _, _ := net.SplitHostPort(d.Listen)
	port, _ := strconv.Atoi(defPort)
	s := Settings{
		Listen:           net.JoinHostPort(r.String("console.bind.host", defHost), strconv.Itoa(r.Int("console.port", port, 0, 65535))),
		MetaHTTP:         r.HostPort("console.metaserver.http", d.MetaHTTP),
		BackupHTTP:       list(r.String("console.backup.http", "")),
		BackupResendPath: r.String("console.backup.resend.path", d.BackupResendPath),
		BackupToken:      r.String("console.backup.token", ""),
		OpenReads:        r.Bool("console.read.open", d.OpenReads),
		BrokerHTTPOffset: r.Int("console.broker.http.offset", d.BrokerHTTPOffset, -1, 1000),
		BrokerHTTPPorts:  map[string]int{},
		WatchdogHTTP:     list(r.String("console.watchdog.http", "")),
		Consul:           r.HostPort("consul.address", l.Getenv("CONSUL_HTTP_ADDR")),
		FetchTimeout:     r.Millis("console.fetch.timeout.ms", d.FetchTimeout, 100*time.Millisecond, 5*time.Minute),
	}
	s.Limits.MaxConnections = r.Int("http.max.connections", 256, 1, 100000)
	portMap := r.String("console.broker.http.ports", "")
	tokenFile := r.String("console.tokens.file", FileTokens)
	if err := r.Err(); err != nil {
		return Settings{}, nil, fmt.Errorf("invalid configuration in %s:\n%w", f.Path, err)
	}
	for _, e := range list(portMap) {
		k, v, ok := strings.Cut(e, "=")
		p, perr := strconv.Atoi(strings.TrimSpace(v))
		if !ok || perr != nil || p < 1 || p > 65535 {
			return Settings{}, nil, fmt.Errorf("%s: console.broker.http.ports entry %q: want ip:servePort=httpPort, e.g. 10.0.0.5:20881=8081", f.Path, e)
		}
		s.BrokerHTTPPorts[strings.TrimSpace(k)] = p
	}
	if !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(dir, tokenFile)
	}
	tf, err := conf.LoadFile(filepath.Dir(tokenFile), filepath.Base(tokenFile))
	if err != nil {
		return Settings{}, nil, fmt.Errorf("reading the admin tokens (console.tokens.file): %w", err)
	}
	s.Tokens = map[string]string{}
	for k, v := range tf.Map() {
		if strings.HasPrefix(k, "<") {
			return Settings{}, nil, fmt.Errorf("%s line %d: %q is the sample's placeholder, not a token; put a real secret there", tf.Path, tf.Line(k), k)
		}
		s.Tokens[k] = v
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return s, r, nil
}

// list splits a comma-separated value, dropping blanks.
func list(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
