package metaserver

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/netlimits"
)

// The loader maps QMQ's conf directory (its file names and keys, with
// --set and QMQ_<KEY> overrides) onto Settings and Dynamic. New never reads
// a file: `qmq metaserver --conf` goes through LoadDir, tests and embedders
// may build the values in code.

// Config file names, as in QMQ's conf directory.
const (
	FileMetaserver     = "metaserver.properties"
	FileDatasource     = "datasource.properties"
	FileTokens         = "valid-api-tokens.properties"
	FileClientLog      = "client_log_switch.properties"
	FileBrokerHTTPPort = "broker-http-port-map.properties"
)

// LoadSettings reads every file of the conf directory dir with the
// overrides of l: the static settings, the dynamic ones, and the report of
// keys no setting reads (for the caller to log, see Options.Keys). Missing
// files and keys keep DefaultSettings and DefaultDynamic. An invalid
// value, a placeholder API token and an unknown --set key are errors, each
// naming where it came from.
func LoadSettings(dir string, l conf.Lookup) (Settings, *Dynamic, conf.KeyReport, error) {
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
	secret, secretErr := readDelayAdminSecret(r)
	s.DelayAdminSecret = secret
	d, readers, err := readDynamic(dir, r)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, err
	}
	if err := errors.Join(r.Err(), dr.Err(), secretErr); err != nil {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	if err := errors.Join(s.Validate(), d.Validate()); err != nil {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration in %s:\n%w", dir, err)
	}
	report, err := conf.CheckKeys(l.Overrides, append([]*conf.Reader{r, dr}, readers...)...)
	if err != nil {
		return Settings{}, nil, conf.KeyReport{}, fmt.Errorf("invalid configuration for the metaserver:\n%w", err)
	}
	return s, d, report, nil
}

// FileReloader is an Options.Reload that re-reads the conf directory dir
// with the overrides of l, as LoadSettings does.
func FileReloader(dir string, l conf.Lookup) func() (Settings, *Dynamic, conf.KeyReport, error) {
	return func() (Settings, *Dynamic, conf.KeyReport, error) { return LoadSettings(dir, l) }
}

// LoadDir reads the conf directory dir for New, as `qmq metaserver --conf`
// does: the static settings, and Options with the dynamic ones, the key
// report, a FileReloader of dir, dir for messages, and log.
func LoadDir(dir string, l conf.Lookup, log hclog.Logger) (Settings, Options, error) {
	s, d, keys, err := LoadSettings(dir, l)
	if err != nil {
		return Settings{}, Options{}, err
	}
	return s, Options{Logger: log, Dynamic: d, Keys: keys, Reload: FileReloader(dir, l), ConfDir: dir}, nil
}

// readSettings reads the static settings of metaserver.properties (r) and
// datasource.properties (dr) over DefaultSettings.
func readSettings(r, dr *conf.Reader) Settings {
	def := DefaultSettings()
	s := Settings{
		// Port 0 picks a free port (tests).
		DiscoverPort:  r.Int("meta.server.discover.port", def.DiscoverPort, 0, 65535),
		ServerPort:    r.Int("meta.server.port", def.ServerPort, 0, 65535),
		BindHost:      r.String("meta.server.bind.host", def.BindHost),
		AdvertiseIP:   r.String("meta.server.advertise.ip", def.AdvertiseIP),
		RefreshPeriod: r.Seconds("refresh.period.seconds", def.RefreshPeriod, minRefreshPeriod, maxRefreshPeriod),
		LoadBalance:   r.OneOf("meta.server.load.balance", def.LoadBalance, loadBalanceRand),
		StoreRoot:     r.String("store.root", def.StoreRoot),
		MaxFrameSize:  r.Int("max.frame.size", def.MaxFrameSize, minMaxFrameSize, maxMaxFrameSize),
		// Consul's own variables are the defaults of its two keys, as for
		// every Consul client.
		ConsulAddress: r.HostPort("consul.address", cmp.Or(os.Getenv("CONSUL_HTTP_ADDR"), def.ConsulAddress)),
		ConsulToken:   r.String("consul.token", cmp.Or(os.Getenv("CONSUL_HTTP_TOKEN"), def.ConsulToken)),
		ConsulService: r.String("consul.service.name", def.ConsulService),
		ConsulDeregisterAfter: r.Millis("consul.deregister.critical.after.ms", def.ConsulDeregisterAfter,
			consul.MinDeregisterCriticalAfter, maxConsulDereg),
	}
	// netlimits owns the limits' defaults (see defaultLimits); the memory
	// budget's follows max.frame.size.
	s.Limits = netlimits.Read(r, s.MaxFrameSize)
	s.JDBCURL = dr.String("jdbc.url", def.JDBCURL)
	s.JDBCUser = dr.String("jdbc.username", def.JDBCUser)
	s.JDBCPassword = dr.String("jdbc.password", def.JDBCPassword)
	s.PoolSizeMax = dr.Int("pool.size.max", def.PoolSizeMax, 1, maxPoolSize)
	dr.Ignore("jdbc.driverClassName", "the MySQL driver is built in")
	return s
}

// readDynamic reads the hot-reloadable keys of metaserver.properties (r)
// and the map-like files over DefaultDynamic, returning the map-like files'
// readers for CheckKeys.
func readDynamic(dir string, r *conf.Reader) (*Dynamic, []*conf.Reader, error) {
	d := DefaultDynamic()
	d.HeartbeatTimeout = r.Millis("heartbeat.timeout.ms", d.HeartbeatTimeout, minHeartbeatTimeout, maxHeartbeatTimeout)
	d.MinGroupNum = r.Int("min.group.num", d.MinGroupNum, 1, maxMinGroupNum)
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
			d.LogDefault = cr.Bool(k, d.LogDefault)
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

// checkTokens refuses the placeholder tokens of valid-api-tokens.properties
// (see placeholderToken), naming the file and line of each.
func checkTokens(f *conf.File) error {
	var errs []error
	for _, t := range f.Keys() {
		if why := placeholderToken(t); why != "" {
			errs = append(errs, fmt.Errorf("%s:%d: token %q %s: %s", f.Path, f.Line(t), t, why, tokenAdvice()))
		}
	}
	return errors.Join(errs...)
}

// noEnv keeps map-like files (whose keys are subjects or hosts) out of the environment overrides.
func noEnv(string) (string, bool) { return "", false }
