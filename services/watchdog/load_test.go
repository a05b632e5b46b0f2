package watchdog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

func writeConf(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var noEnv = func(string) (string, bool) { return "", false }

func TestLoadSettingsQMQKeys(t *testing.T) {
	dir := writeConf(t, map[string]string{
		FileWatchdog: "appCode=watchdog\nnamespace=cn1\ncheckInterval=30000\nrefreshInterval=60000\nsendMessageTaskExecuteTimeout=90000\n" +
			"meta.server.endpoint=http://meta:8080/meta/address\nsomething.else=1\n",
		FileDatasource: "jdbc.driverClassName=com.mysql.jdbc.Driver\njdbc.url=jdbc:mysql://db:3306/qmq_meta?useSSL=false\njdbc.username=qmq\njdbc.password=pw\npool.size.max=10\n",
	})
	s, report, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if s.AppCode != "watchdog" || s.Namespace != "cn1" || s.CheckInterval != 30*time.Second || s.RefreshInterval != time.Minute ||
		s.TaskTimeout != 90*time.Second || s.MetaEndpoint != "http://meta:8080/meta/address" ||
		s.JDBCURL != "jdbc:mysql://db:3306/qmq_meta?useSSL=false" || s.JDBCUser != "qmq" || s.JDBCPassword != "pw" {
		t.Errorf("settings: %+v", s)
	}
	if len(report.Unknown) != 1 || report.Unknown[0].Key != "something.else" {
		t.Errorf("unknown keys: %+v", report.Unknown)
	}
}

func TestLoadSettingsErrors(t *testing.T) {
	dir := writeConf(t, map[string]string{FileWatchdog: "checkInterval=soon\n"})
	_, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err == nil || !strings.Contains(err.Error(), "checkInterval") {
		t.Errorf("bad checkInterval: %v", err)
	}
	dir = writeConf(t, map[string]string{})
	_, _, err = LoadSettings(dir, conf.Lookup{Env: noEnv})
	if err == nil || !strings.Contains(err.Error(), "appCode is required") || !strings.Contains(err.Error(), "meta.server.endpoint is required") {
		t.Errorf("missing keys: %v", err)
	}
	_, _, err = LoadSettings(dir, conf.Lookup{Env: noEnv, Overrides: conf.Overrides{"appCode": "a", "meta.server.endpoint": "m:8080", "leader.lease.ms": "1000"}})
	if err == nil || !strings.Contains(err.Error(), "leader.lease.ms=1000") {
		t.Errorf("lease shorter than three renewals: %v", err)
	}
	_, _, err = LoadSettings(dir, conf.Lookup{Env: noEnv, Overrides: conf.Overrides{"appCode": "a", "meta.server.endpoint": "m:8080", "checkIntervall": "1"}})
	if err == nil || !strings.Contains(err.Error(), "checkIntervall") {
		t.Errorf("unknown --set key: %v", err)
	}
}

// The Consul election's keys: on by default once consul.address is set,
// off with election.consul.enable=false; a check TTL below 1 s refused.
func TestLoadSettingsConsulElection(t *testing.T) {
	dir := writeConf(t, map[string]string{FileWatchdog: "appCode=a\nmeta.server.endpoint=m:8080\n"})
	load := func(sets conf.Overrides) (Settings, error) {
		s, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv, Overrides: sets})
		return s, err
	}
	s, err := load(nil)
	if err != nil || s.useConsulElection() {
		t.Errorf("without consul.address: consul election %v, %v; want the table", s.useConsulElection(), err)
	}
	s, err = load(conf.Overrides{"consul.address": "127.0.0.1:8500", "election.consul.key.prefix": "qmq/wd",
		"election.consul.check.ttl.ms": "5000", "election.consul.lock.delay.ms": "2000", "election.consul.session.ttl.ms": "15000"})
	if err != nil || !s.useConsulElection() || s.ConsulCheckTTL != 5*time.Second || s.ConsulLockDelay != 2*time.Second ||
		s.ConsulSessionTTL != 15*time.Second || consulElectionKey(s.ConsulKeyPrefix, s.Namespace) != "qmq/wd/default/leader" {
		t.Errorf("with consul.address: %+v, %v", s, err)
	}
	s, err = load(conf.Overrides{"consul.address": "127.0.0.1:8500", "election.consul.enable": "false"})
	if err != nil || s.useConsulElection() {
		t.Errorf("election.consul.enable=false: consul election %v, %v; want the table", s.useConsulElection(), err)
	}
	if _, err = load(conf.Overrides{"consul.address": "127.0.0.1:8500", "election.consul.lock.delay.ms": "1000"}); err == nil ||
		!strings.Contains(err.Error(), "election.consul.lock.delay.ms=1000 is too short") {
		t.Errorf("lock-delay 1 s with renewals every second: %v", err)
	}
	if _, err = load(conf.Overrides{"consul.address": "127.0.0.1:8500", "election.consul.check.ttl.ms": "500"}); err == nil ||
		!strings.Contains(err.Error(), "election.consul.check.ttl.ms=500") {
		t.Errorf("check TTL 500 ms: %v", err)
	}
}

func TestParseClientDB(t *testing.T) {
	for _, c := range []struct {
		url, user, table, dbname, err string
	}{
		{url: "mmm://db1:3306", table: "qmq_produce.qmq_msg_queue"},
		{url: "MYSQL://db1:3306", table: "qmq_produce.qmq_msg_queue"},
		{url: "mmm://db1:3306/app", table: "app.qmq_msg_queue", dbname: "app"},
		{url: "postgresql://pg:5432/orders", table: "qmq_produce.qmq_msg_queue", dbname: "orders"},
		{url: "postgres://pg:5432", user: "shop", table: "qmq_produce.qmq_msg_queue", dbname: "shop"},
		{url: "oracle://db:1521", err: `unknown type "oracle"`},
		{url: "mmm://db1", err: "no host:port"},
		{url: "mmm://u:secret@db1:3306", err: "not in the url"},
		{url: "mmm://db1:3306/a;drop", err: "not a plain name"},
	} {
		d, err := parseClientDB(store.ClientDB{URL: c.url, User: c.user, Password: "secret"}, DefaultSettings().Table)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.url, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: the error holds the password: %v", c.url, err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.url, err)
		case d.table != c.table || d.dbname != c.dbname:
			t.Errorf("%s: table %q db %q, want %q %q", c.url, d.table, d.dbname, c.table, c.dbname)
		}
	}
}

// New refuses a metaserver SQLite file that does not exist, rather than
// creating an empty database the metaserver never reads.
func TestNewWithoutMetaserverDatabase(t *testing.T) {
	s := DefaultSettings()
	s.AppCode, s.MetaEndpoint, s.StoreRoot, s.HTTPPort = "a", "127.0.0.1:1", t.TempDir(), -1
	_, err := New(t.Context(), s, Options{})
	if err == nil || !strings.Contains(err.Error(), "start the metaserver first") {
		t.Errorf("New without metaserver.db: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(s.StoreRoot, "metaserver.db")); statErr == nil {
		t.Error("New created metaserver.db")
	}
}
