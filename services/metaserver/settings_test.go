package metaserver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
)

// Validate refuses settings built in code that the loader would refuse,
// naming the key and the value.
func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Settings)
		want string
	}{
		{func(s *Settings) { s.DiscoverPort, s.ServerPort = 9000, 9000 }, "meta.server.discover.port and meta.server.port are both 9000"},
		{func(s *Settings) { s.ServerPort = 70000 }, "meta.server.port=70000 is not a port"},
		{func(s *Settings) { s.RefreshPeriod = 0 }, "refresh.period.seconds=0s is out of range"},
		{func(s *Settings) { s.LoadBalance = "" }, `meta.server.load.balance="" is not supported`},
		{func(s *Settings) { s.MaxFrameSize = 0 }, "max.frame.size=0 is out of range"},
		{func(s *Settings) { s.StoreRoot = "" }, "store.root is empty and there is no jdbc.url"},
		{func(s *Settings) { s.JDBCURL = "mysql://db/x" }, "jdbc.url (datasource.properties): bad JDBC URL"},
		{func(s *Settings) { s.JDBCURL, s.PoolSizeMax = "jdbc:mysql://db/x", 0 }, "pool.size.max=0 is out of range"},
		{func(s *Settings) { s.ConsulAddress = "consul" }, `consul.address="consul" is not host:port`},
		{func(s *Settings) { s.ConsulAddress, s.ConsulDeregisterAfter = "127.0.0.1:8500", time.Second }, "consul.deregister.critical.after.ms=1000 is out of range"},
		{func(s *Settings) { s.Limits.MaxConnections = 0 }, "max.connections=0: want at least 1"},
		{func(s *Settings) { s.Limits.MemoryBudget = 1 }, "frame.memory.budget.bytes=1 is smaller than max.frame.size"},
		{func(s *Settings) { s.Limits.HTTPReadTimeout = 0 }, "http.read.timeout.ms=0: want a positive number"},
	} {
		s := DefaultSettings()
		tc.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	// Every problem is reported, not just the first.
	s := DefaultSettings()
	s.RefreshPeriod, s.MaxFrameSize = 0, 0
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "refresh.period.seconds") || !strings.Contains(err.Error(), "max.frame.size") {
		t.Errorf("two problems: %v", err)
	}
}

// New refuses invalid settings or dynamic settings before opening anything.
func TestNewRefusesInvalidSettings(t *testing.T) {
	s := testSettings(t.TempDir())
	s.RefreshPeriod = 0
	if _, err := New(context.Background(), s, Options{}); err == nil || !strings.Contains(err.Error(), "refresh.period.seconds") {
		t.Errorf("invalid settings: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Dynamic)
		want string
	}{
		{func(d *Dynamic) { d.Tokens["<token 1>"] = "ops" }, `API token "<token 1>" looks like a placeholder`},
		{func(d *Dynamic) { d.MinGroupNum = 0 }, "min.group.num=0 is out of range"},
		{func(d *Dynamic) { d.HeartbeatTimeout = 0 }, "heartbeat.timeout.ms=0 is out of range"},
		{func(d *Dynamic) { d.BrokerHTTPPorts["s1"] = 0 }, `broker HTTP port of "s1" is 0`},
	} {
		d := testDynamic()
		tc.edit(d)
		if _, err := New(context.Background(), testSettings(t.TempDir()), Options{Dynamic: d}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// A configuration source built in code: its dynamic settings take effect
// on reload, and a broken source is logged once, not at every poll.
func TestReloadFromCode(t *testing.T) {
	dir := t.TempDir()
	settings := testSettings(dir)
	cur := testDynamic()
	var broken error
	// Called under the server's reload lock, from this goroutine only (the
	// poll interval is longer than the test).
	reload := func() (Settings, *Dynamic, conf.KeyReport, error) { return settings, cur, conf.KeyReport{}, broken }
	h := runServer(t, dir, settings, Options{Dynamic: cur, Reload: reload, ConfigPollInterval: time.Hour})
	cur = testDynamic()
	cur.MinGroupNum = 5
	h.srv.Reload("test")
	if got := h.srv.dynamic().MinGroupNum; got != 5 {
		t.Fatalf("min.group.num after reload = %d, want 5", got)
	}
	broken = errors.New("source down")
	h.srv.reload("poll", false)
	h.srv.reload("poll", false)
	if n := h.logs.Count("configuration reload rejected"); n != 1 {
		t.Errorf("a broken source was logged %d times over two polls, want once", n)
	}
	if got := h.srv.dynamic().MinGroupNum; got != 5 {
		t.Errorf("a failed reload changed min.group.num to %d", got)
	}
	// Polls that find nothing new say nothing.
	broken = nil
	h.srv.reload("poll", false)
	before := h.logs.Count("configuration reloaded")
	h.srv.reload("poll", false)
	if n := h.logs.Count("configuration reloaded"); n != before {
		t.Errorf("an unchanged poll logged a reload")
	}
	if strings.Contains(h.logs.String(), "static settings changed") {
		t.Errorf("unchanged static settings warned about:\n%s", h.logs.String())
	}
}
