package metaserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Config file names, as in QMQ's conf directory.
const (
	FileMetaserver     = "metaserver.properties"
	FileDatasource     = "datasource.properties"
	FileTokens         = "valid-api-tokens.properties"
	FileClientLog      = "client_log_switch.properties"
	FileBrokerHTTPPort = "broker-http-port-map.properties"
)

// Settings are read once at start-up; changing them needs a restart.
type Settings struct {
	DiscoverPort  int           // meta.server.discover.port: HTTP
	ServerPort    int           // meta.server.port: TCP
	BindHost      string        // meta.server.bind.host (ours): "" = all interfaces
	AdvertiseIP   string        // meta.server.advertise.ip (ours): IP put in /meta/address; "" = the IP the caller reached
	RefreshPeriod time.Duration // refresh.period.seconds
	LoadBalance   string        // meta.server.load.balance: only "random"
	StoreRoot     string        // store.root (ours): where the embedded SQLite file lives
	MaxFrameSize  int           // max.frame.size (ours)

	ConsulAddress string // consul.address (ours); "" = CONSUL_HTTP_ADDR; both empty = no registration
	ConsulToken   string // consul.token (ours)
	ConsulService string // consul.service.name (ours), default qmq-metaserver
	// ConsulDeregisterAfter is consul.deregister.critical.after.ms (ours): the
	// agent removes the registration once its check is critical this long.
	ConsulDeregisterAfter time.Duration

	JDBCURL      string // datasource.properties jdbc.url; "" = embedded SQLite
	JDBCUser     string
	JDBCPassword string
	PoolSizeMax  int

	// Limits are max.connections, tcp.idle.timeout.ms, frame.read.timeout.ms,
	// frame.memory.budget.bytes and http.max.connections (ours).
	Limits netlimits.Settings
}

// Dynamic settings are re-read on SIGHUP and when a file changes (QMQ's 动态生效 keys).
type Dynamic struct {
	HeartbeatTimeout time.Duration     // heartbeat.timeout.ms
	MinGroupNum      int               // min.group.num
	Tokens           map[string]string // valid-api-tokens.properties: token -> description
	LogDefault       bool              // client_log_switch.properties default
	LogSubjects      map[string]bool   // client_log_switch.properties per subject
	BrokerHTTPPorts  map[string]int    // broker-http-port-map.properties: "host[/servePort]" -> http port
}

// ValidToken reports whether token is one of the configured API tokens, comparing in constant time.
func (d *Dynamic) ValidToken(token string) bool {
	if token == "" {
		return false
	}
	ok := 0
	for t := range d.Tokens {
		ok |= subtle.ConstantTimeCompare([]byte(t), []byte(token))
	}
	return ok == 1
}

// VerboseFor reports whether client requests for subject should be logged in detail.
func (d *Dynamic) VerboseFor(subject string) bool {
	if v, ok := d.LogSubjects[subject]; ok {
		return v
	}
	return d.LogDefault
}

// BrokerHTTPPort is the slave HTTP port for a broker row, from broker-http-port-map.properties
// ("host/servePort" wins over "host"), default 8080.
func (d *Dynamic) BrokerHTTPPort(b store.Broker) int {
	if p, ok := d.BrokerHTTPPorts[fmt.Sprintf("%s/%d", b.Hostname, b.ServePort)]; ok {
		return p
	}
	if p, ok := d.BrokerHTTPPorts[b.Hostname]; ok {
		return p
	}
	return 8080
}

// loadConfig reads every file of the conf directory with overrides: the
// static settings, the dynamic ones, and the report of keys no setting
// reads (for the caller to log). An unknown --set key is an error.
func loadConfig(dir string, l conf.Lookup) (Settings, *Dynamic, conf.KeyReport, error) {
	mf, err := conf.LoadFile(dir, FileMetaserver)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, err
	}
	df, err := conf.LoadFile(dir, FileDatasource)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, err
	}
	// One reader per file, for the static and the dynamic keys alike, so that
	// CheckKeys knows every key metaserver.properties may hold.
	r := conf.NewReader(mf, l)
	dr := conf.NewReader(df, l)
	s := readSettings(r, dr)
	d, readers, err := readDynamic(dir, r)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, err
	}
	if err := errors.Join(r.Err(), dr.Err()); err != nil {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	if s.DiscoverPort == s.ServerPort && s.ServerPort != 0 {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration in %s: meta.server.discover.port and meta.server.port are both %d; the HTTP and TCP ports must differ (QMQ defaults: 8080 and 20880)", dir, s.ServerPort)
	}
	report, err := conf.CheckKeys(l.Overrides, append([]*conf.Reader{r, dr}, readers...)...)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration for the metaserver:\n%w", err)
	}
	return s, d, report, nil
}

// readSettings reads the static settings of metaserver.properties (r) and
// datasource.properties (dr).
func readSettings(r, dr *conf.Reader) Settings {
	s := Settings{
		// Port 0 picks a free port (tests); QMQ's defaults are 8080 and 20880.
		DiscoverPort:  r.Int("meta.server.discover.port", 8080, 0, 65535),
		ServerPort:    r.Int("meta.server.port", 20880, 0, 65535),
		BindHost:      r.String("meta.server.bind.host", ""),
		AdvertiseIP:   r.String("meta.server.advertise.ip", ""),
		RefreshPeriod: r.Seconds("refresh.period.seconds", 5*time.Second, time.Second, time.Hour),
		LoadBalance:   r.OneOf("meta.server.load.balance", "random", "random"),
		StoreRoot:     r.String("store.root", "./data"),
		MaxFrameSize:  r.Int("max.frame.size", 16<<20, 1<<10, 1<<30),
		ConsulAddress: r.HostPort("consul.address", os.Getenv("CONSUL_HTTP_ADDR")),
		ConsulToken:   r.String("consul.token", os.Getenv("CONSUL_HTTP_TOKEN")),
		ConsulService: r.String("consul.service.name", "qmq-metaserver"),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", consul.DefaultDeregisterCriticalAfter,
			consul.MinDeregisterCriticalAfter, 7*24*time.Hour),
	}
	s.Limits = netlimits.Read(r, s.MaxFrameSize)
	s.JDBCURL = dr.String("jdbc.url", "")
	s.JDBCUser = dr.String("jdbc.username", "")
	s.JDBCPassword = dr.String("jdbc.password", "")
	s.PoolSizeMax = dr.Int("pool.size.max", 10, 1, 1000)
	dr.Ignore("jdbc.driverClassName", "the MySQL driver is built in")
	return s
}

// readDynamic reads the hot-reloadable keys of metaserver.properties (r)
// and the map-like files, returning their readers for CheckKeys.
func readDynamic(dir string, r *conf.Reader) (*Dynamic, []*conf.Reader, error) {
	d := &Dynamic{
		HeartbeatTimeout: r.Millis("heartbeat.timeout.ms", 30*time.Second, time.Second, 24*time.Hour),
		MinGroupNum:      r.Int("min.group.num", 2, 1, 1000),
		LogSubjects:      map[string]bool{},
		BrokerHTTPPorts:  map[string]int{},
	}
	tf, err := conf.LoadFile(dir, FileTokens)
	if err != nil {
		return nil, nil, err
	}
	if err := checkTokens(tf); err != nil {
		return nil, nil, err
	}
	d.Tokens = tf.Map()
	cf, err := conf.LoadFile(dir, FileClientLog)
	if err != nil {
		return nil, nil, err
	}
	cr := conf.NewReader(cf, conf.Lookup{Env: noEnv})
	for _, k := range cf.Keys() {
		if k == "default" {
			d.LogDefault = cr.Bool(k, false)
			continue
		}
		d.LogSubjects[k] = cr.Bool(k, false)
	}
	pf, err := conf.LoadFile(dir, FileBrokerHTTPPort)
	if err != nil {
		return nil, nil, err
	}
	pr := conf.NewReader(pf, conf.Lookup{Env: noEnv})
	for _, k := range pf.Keys() {
		d.BrokerHTTPPorts[k] = pr.Port(k, 8080)
	}
	if err := errors.Join(cr.Err(), pr.Err()); err != nil {
		return nil, nil, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	return d, []*conf.Reader{cr, pr}, nil
}

// checkTokens refuses tokens that look like a placeholder copied from a
// guide ("<token 1>", "changeme", "your-token") or are too short to be
// secret: such a token lets anyone change the cluster.
func checkTokens(f *conf.File) error {
	var errs []error
	for _, t := range f.Keys() {
		if why := placeholderToken(t); why != "" {
			errs = append(errs, fmt.Errorf("%s:%d: token %q %s: put a random token of at least %d characters there, e.g. head -c 48 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9' | head -c 64",
				f.Path, f.Line(t), t, why, minTokenLen))
		}
	}
	return errors.Join(errs...)
}

// minTokenLen is the shortest API token accepted.
const minTokenLen = 16

// placeholderToken says why t is not a real token, or "".
func placeholderToken(t string) string {
	lt := strings.ToLower(t)
	switch {
	case strings.ContainsAny(t, "<>"):
		return "looks like a placeholder (it has < or >)"
	case strings.Contains(lt, "changeme") || strings.Contains(lt, "change-me") || strings.Contains(lt, "your-token") || strings.Contains(lt, "your_token"):
		return "looks like a placeholder"
	case strings.IndexFunc(t, unicode.IsSpace) >= 0:
		return "has whitespace (a placeholder, or a line the properties syntax split elsewhere than meant)"
	case len(t) < minTokenLen:
		return fmt.Sprintf("is shorter than %d characters", minTokenLen)
	}
	return ""
}

// noEnv keeps map-like files (whose keys are subjects or hosts) out of the environment overrides.
func noEnv(string) (string, bool) { return "", false }
