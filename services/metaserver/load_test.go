package metaserver

import (
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
)

func noEnvTest(string) (string, bool) { return "", false }

// Unknown keys of metaserver.properties and datasource.properties are
// logged at start-up, each with the nearest known key or the file it
// belongs in; jdbc.driverClassName is QMQ's and ignored on purpose; a key
// added by a later edit is warned about on reload.
func TestUnknownKeysWarned(t *testing.T) {
	h := startServerFiles(t, map[string]string{
		FileMetaserver: "meta.server.discover.port=0\nmeta.server.port=0\nmin.grop.num=3\njdbc.url=jdbc:mysql://db/x\n",
		FileDatasource: "jdbc.driverClassName=com.mysql.jdbc.Driver\npool.size.maxx=5\n",
	})
	mp, dp := filepath.Join(h.dir, FileMetaserver), filepath.Join(h.dir, FileDatasource)
	for _, want := range []string{
		"[WARN]  metaserver: " + mp + ": unknown key 'min.grop.num' (did you mean 'min.group.num'?)",
		"[WARN]  metaserver: " + mp + ": unknown key 'jdbc.url' (it belongs in datasource.properties)",
		"[WARN]  metaserver: " + dp + ": unknown key 'pool.size.maxx' (did you mean 'pool.size.max'?)",
		"[INFO]  metaserver: " + dp + ": key 'jdbc.driverClassName' is accepted and ignored: the MySQL driver is built in",
	} {
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(h.logs.String(), "unknown key 'meta.server") {
		t.Errorf("known keys reported:\n%s", h.logs.String())
	}
	writeConf(t, h.dir, map[string]string{FileMetaserver: "meta.server.discover.port=0\nmeta.server.port=0\nmin.grop.num=3\njdbc.url=jdbc:mysql://db/x\nheartbeat.timout.ms=5000\n"})
	h.srv.Reload("test")
	if n := h.logs.Count("unknown key 'heartbeat.timout.ms' (did you mean 'heartbeat.timeout.ms'?)"); n != 1 {
		t.Errorf("new typo warned %d times on reload, want 1", n)
	}
	if n := h.logs.Count("unknown key 'min.grop.num'"); n != 1 {
		t.Errorf("old typo warned %d times, want once (at start)", n)
	}
}

// An unknown --set key stops start-up with the key and the nearest known one.
func TestUnknownSetKeyStopsStart(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, nil)
	_, _, _, err := LoadSettings(dir, conf.Lookup{Overrides: conf.Overrides{"store.root": dir, "min.group.nun": "2"}, Env: noEnvTest})
	if err == nil || !strings.Contains(err.Error(), "--set: unknown key 'min.group.nun' (did you mean 'min.group.num'?)") {
		t.Fatalf("got %v", err)
	}
}

// A token that looks like a placeholder is refused by the loader, naming the
// file and line; a reload with one keeps the previous tokens.
func TestPlaceholderTokenRefused(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"# tokens\n<token 1>=ops\n", ":2: token \"<token\" looks like a placeholder"},
		{"changeme-changeme-changeme=ops\n", ":1: token \"changeme-changeme-changeme\" looks like a placeholder"},
		{"YOUR-TOKEN-GOES-HERE-1234=ops\n", "looks like a placeholder"},
		{"a\\ b-0123456789abcdef=ops\n", "has whitespace"},
		{testToken + "=ok\nshort=ops\n", ":2: token \"short\" is shorter than 16 characters"},
	} {
		dir := t.TempDir()
		writeConf(t, dir, map[string]string{FileTokens: tc.file})
		_, _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnvTest})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, FileTokens)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tokens %q: got %v, want %q", tc.file, err, tc.want)
		}
	}
	h := startServerFiles(t, nil)
	writeConf(t, h.dir, map[string]string{FileTokens: "<token 1>=ops\n"})
	h.srv.Reload("test")
	if !h.srv.dynamic().ValidToken(testToken) || !strings.Contains(h.logs.String(), "configuration reload rejected") {
		t.Fatalf("a placeholder token replaced the tokens on reload:\n%s", h.logs.String())
	}
}

// The sample conf/ files hold no key reported as unknown.
func TestSampleConfKeysKnown(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "conf")
	_, _, rep, err := LoadSettings(sample, conf.Lookup{Env: noEnvTest})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("sample conf: %v, unknown %v", err, rep.Unknown)
	}
}

// An empty conf directory means DefaultSettings and DefaultDynamic: the
// loader has no defaults of its own.
func TestLoadDefaults(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	s, d, rep, err := LoadSettings(t.TempDir(), conf.Lookup{Env: noEnvTest})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("empty dir: %v, unknown %v", err, rep.Unknown)
	}
	if s != DefaultSettings() {
		t.Errorf("loaded  %+v\ndefaults %+v", s, DefaultSettings())
	}
	if !reflect.DeepEqual(d, DefaultDynamic()) {
		t.Errorf("loaded %+v, defaults %+v", d, DefaultDynamic())
	}
	if err := DefaultSettings().Validate(); err != nil {
		t.Errorf("DefaultSettings do not validate: %v", err)
	}
}

// Each file's keys land in their fields: QMQ's datasource.properties, the
// map-like files, the dynamic keys of metaserver.properties, and Consul's
// variables as defaults.
func TestLoadKeys(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	dir := t.TempDir()
	writeConf(t, dir, map[string]string{
		FileMetaserver:     "meta.server.discover.port=0\nmeta.server.port=0\nmin.group.num=3\nheartbeat.timeout.ms=1500\nmax.frame.size=2048\n",
		FileDatasource:     "jdbc.driverClassName=com.mysql.jdbc.Driver\njdbc.url=jdbc:mysql://db:3306/qmq?useSSL=false\njdbc.username=qmq\njdbc.password=secret\npool.size.max=4\n",
		FileClientLog:      "default=false\norder=true\n",
		FileBrokerHTTPPort: "s1/20881=8081\ns2=8082\n",
	})
	s, d, _, err := LoadSettings(dir, conf.Lookup{Env: noEnvTest})
	if err != nil {
		t.Fatal(err)
	}
	if s.JDBCURL != "jdbc:mysql://db:3306/qmq?useSSL=false" || s.JDBCUser != "qmq" || s.JDBCPassword != "secret" || s.PoolSizeMax != 4 {
		t.Errorf("datasource: %+v", s)
	}
	if s.ConsulAddress != "127.0.0.1:8500" {
		t.Errorf("consul.address = %q, want CONSUL_HTTP_ADDR", s.ConsulAddress)
	}
	if s.MaxFrameSize != 2048 || s.Limits.MemoryBudget != 4*2048 {
		t.Errorf("max.frame.size %d, memory budget %d: want 2048 and four frames", s.MaxFrameSize, s.Limits.MemoryBudget)
	}
	want := DefaultDynamic()
	want.MinGroupNum, want.HeartbeatTimeout = 3, 1500*time.Millisecond
	want.Tokens[testToken] = "token1"
	want.LogSubjects["order"] = true
	want.BrokerHTTPPorts["s1/20881"], want.BrokerHTTPPorts["s2"] = 8081, 8082
	if !reflect.DeepEqual(d, want) {
		t.Errorf("dynamic: got %+v, want %+v", d, want)
	}
}

// A cross-field error found by Validate names the directory the settings
// came from.
func TestLoadValidates(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, map[string]string{FileMetaserver: "meta.server.discover.port=9000\nmeta.server.port=9000\n"})
	_, _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnvTest})
	if err == nil || !strings.Contains(err.Error(), "invalid configuration in "+dir) || !strings.Contains(err.Error(), "the HTTP and TCP ports must differ") {
		t.Fatalf("got %v", err)
	}
}
