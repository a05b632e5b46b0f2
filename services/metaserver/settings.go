package metaserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/qmq-go/qmq/conf"
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

// loadSettings reads the static settings from dir with overrides.
func loadSettings(dir string, l conf.Lookup) (Settings, error) {
	mf, err := conf.LoadFile(dir, FileMetaserver)
	if err != nil {
		return Settings{}, err
	}
	df, err := conf.LoadFile(dir, FileDatasource)
	if err != nil {
		return Settings{}, err
	}
	r := conf.NewReader(mf, l)
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
	}
	s.Limits = netlimits.Read(r, s.MaxFrameSize)
	dr := conf.NewReader(df, l)
	s.JDBCURL = dr.String("jdbc.url", "")
	s.JDBCUser = dr.String("jdbc.username", "")
	s.JDBCPassword = dr.String("jdbc.password", "")
	s.PoolSizeMax = dr.Int("pool.size.max", 10, 1, 1000)
	// jdbc.driverClassName is accepted and ignored: the MySQL driver is built in.
	if err := errors.Join(r.Err(), dr.Err()); err != nil {
		return Settings{}, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	if s.DiscoverPort == s.ServerPort && s.ServerPort != 0 {
		return Settings{}, fmt.Errorf("invalid configuration in %s: meta.server.discover.port and meta.server.port are both %d; the HTTP and TCP ports must differ (QMQ defaults: 8080 and 20880)", dir, s.ServerPort)
	}
	return s, nil
}

// loadDynamic reads the hot-reloadable settings from dir with overrides.
func loadDynamic(dir string, l conf.Lookup) (*Dynamic, error) {
	mf, err := conf.LoadFile(dir, FileMetaserver)
	if err != nil {
		return nil, err
	}
	r := conf.NewReader(mf, l)
	d := &Dynamic{
		HeartbeatTimeout: r.Millis("heartbeat.timeout.ms", 30*time.Second, time.Second, 24*time.Hour),
		MinGroupNum:      r.Int("min.group.num", 2, 1, 1000),
		LogSubjects:      map[string]bool{},
		BrokerHTTPPorts:  map[string]int{},
	}
	tf, err := conf.LoadFile(dir, FileTokens)
	if err != nil {
		return nil, err
	}
	d.Tokens = tf.Map()
	cf, err := conf.LoadFile(dir, FileClientLog)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	pr := conf.NewReader(pf, conf.Lookup{Env: noEnv})
	for _, k := range pf.Keys() {
		d.BrokerHTTPPorts[k] = pr.Port(k, 8080)
	}
	if err := errors.Join(r.Err(), cr.Err(), pr.Err()); err != nil {
		return nil, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	return d, nil
}

// noEnv keeps map-like files (whose keys are subjects or hosts) out of the environment overrides.
func noEnv(string) (string, bool) { return "", false }
