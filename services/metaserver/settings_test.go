package metaserver

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/conf"
)

func noEnvTest(string) (string, bool) { return "", false }

// Unknown keys of metaserver.properties and datasource.properties are
// logged at start-up, each with the nearest known key or the file it
// belongs in; jdbc.driverClassName is QMQ's and ignored on purpose; a key
// added by a later edit is warned about on reload.
func TestUnknownKeysWarned(t *testing.T) {
	h := startServer(t, map[string]string{
		FileMetaserver: "meta.server.discover.port=0\nmeta.server.port=0\nmin.grop.num=3\njdbc.url=jdbc:mysql://db/x\n",
		FileDatasource: "jdbc.driverClassName=com.mysql.jdbc.Driver\npool.size.maxx=5\n",
	})
	mp, dp := filepath.Join(h.confDir, FileMetaserver), filepath.Join(h.confDir, FileDatasource)
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
	writeConf(t, h.confDir, map[string]string{FileMetaserver: "meta.server.discover.port=0\nmeta.server.port=0\nmin.grop.num=3\njdbc.url=jdbc:mysql://db/x\nheartbeat.timout.ms=5000\n"})
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
	_, err := New(context.Background(), Options{ConfDir: dir, Overrides: conf.Overrides{"store.root": dir, "min.group.nun": "2"}, Env: noEnvTest})
	if err == nil || !strings.Contains(err.Error(), "--set: unknown key 'min.group.nun' (did you mean 'min.group.num'?)") {
		t.Fatalf("got %v", err)
	}
}

// A token that looks like a placeholder is refused at start-up, naming the
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
		_, err := New(context.Background(), Options{ConfDir: dir, Overrides: conf.Overrides{"store.root": dir}, Env: noEnvTest})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, FileTokens)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tokens %q: got %v, want %q", tc.file, err, tc.want)
		}
	}
	h := startServer(t, nil)
	writeConf(t, h.confDir, map[string]string{FileTokens: "<token 1>=ops\n"})
	h.srv.Reload("test")
	if !h.srv.dynamic().ValidToken(testToken) || !strings.Contains(h.logs.String(), "configuration reload rejected") {
		t.Fatalf("a placeholder token replaced the tokens on reload:\n%s", h.logs.String())
	}
}

// The sample conf/ files hold no key reported as unknown.
func TestSampleConfKeysKnown(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	sample := filepath.Join(filepath.Dir(file), "..", "..", "conf")
	_, _, rep, err := loadConfig(sample, conf.Lookup{Env: noEnvTest})
	if err != nil || len(rep.Unknown) != 0 {
		t.Fatalf("sample conf: %v, unknown %v", err, rep.Unknown)
	}
}
