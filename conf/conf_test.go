package conf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFileJavaSyntax(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.properties", "# comment\n! also comment\nk1=v1\nk2 : v2\nk3 v3\nlong=a\\\n  b\ntoken!@#=x\n${x}=y\nunicode=\\u4e2d\n")
	f, err := LoadFile(dir, "a.properties")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"k1": "v1", "k2": "v2", "k3": "v3", "long": "ab", "token!@#": "x", "${x}": "y", "unicode": "中"}
	for k, v := range want {
		if got, _ := f.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if missing, err := LoadFile(dir, "none.properties"); err != nil || missing.Exists {
		t.Fatalf("missing file: %v %v", missing, err)
	}
}

func TestPrecedenceAndErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "m.properties", "a=1\nb=2\nc=3\nbad=x\nflag=yes\n")
	f, _ := LoadFile(dir, "m.properties")
	env := map[string]string{"QMQ_B": "20", "QMQ_C": "30"}
	r := NewReader(f, Lookup{Overrides: Overrides{"c": "300"}, Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if a, b, c := r.Int("a", 0, 0, 1000), r.Int("b", 0, 0, 1000), r.Int("c", 0, 0, 1000); a != 1 || b != 20 || c != 300 {
		t.Fatalf("precedence: a=%d b=%d c=%d", a, b, c)
	}
	if d := r.Int("d", 7, 0, 10); d != 7 {
		t.Fatalf("default: %d", d)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	_ = r.Int("bad", 5, 0, 10)
	_ = r.Bool("flag", false)
	err := r.Err()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{filepath.Join(dir, "m.properties") + ": bad=\"x\"", "integer from 0 to 10", "flag=\"yes\"", "true or false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if EnvName("put_need_retry_message.limiter") != "QMQ_PUT_NEED_RETRY_MESSAGE_LIMITER" {
		t.Fatal(EnvName("put_need_retry_message.limiter"))
	}
	if _, err := ParseSet([]string{"novalue"}); err == nil {
		t.Fatal("--set without = accepted")
	}
}

func TestWatchSeesChangesAndHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.properties")
	write(t, dir, "x.properties", "a=1\n")
	var n atomic.Int32
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Watch(ctx, []string{path}, 20*time.Millisecond, hup, func(string) { n.Add(1) }); close(done) }()
	time.Sleep(50 * time.Millisecond)
	write(t, dir, "x.properties", "a=22\n")
	deadline := time.Now().Add(2 * time.Second)
	for n.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	hup <- os.Interrupt
	for n.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n.Load() != 2 {
		t.Fatalf("reloads = %d, want 2 (one file change, one HUP)", n.Load())
	}
}

// Keys nobody reads are reported with the nearest known key; keys another
// file of the component reads are pointed there; declared-ignored keys are
// reported as such; an unknown --set key is an error; the environment is
// not checked.
func TestCheckKeys(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "broker.properties", "broker.port=1\nbrokr.port=2\n# comment\nWait.Slave.Wrote=true\njdbc.url=x\naction.checkpoint.interval=5\nzzz.totally.different=1\n")
	write(t, dir, "datasource.properties", "jdbc.url=y\njdbc.driverClassName=com.mysql.jdbc.Driver\n")
	bf, _ := LoadFile(dir, "broker.properties")
	df, _ := LoadFile(dir, "datasource.properties")
	noEnv := func(string) (string, bool) { return "", false }
	o := Overrides{"broker.port": "3", "sync.prot": "4"}
	r := NewReader(bf, Lookup{Overrides: o, Env: noEnv})
	r.Int("broker.port", 0, 0, 65535)
	r.Int("sync.port", 0, 0, 65535)
	r.Bool("wait.slave.wrote", false)
	r.Ignore("action.checkpoint.interval", "unused in QMQ too")
	dr := NewReader(df, Lookup{Overrides: o, Env: noEnv})
	dr.String("jdbc.url", "")
	dr.Ignore("jdbc.driverClassName", "the driver is built in")

	rep, err := CheckKeys(o, r, dr)
	bp := filepath.Join(dir, "broker.properties")
	var got []string
	for _, u := range rep.Unknown {
		got = append(got, u.String())
	}
	want := []string{
		bp + ": unknown key 'brokr.port' (did you mean 'broker.port'?)",
		bp + ": unknown key 'Wait.Slave.Wrote' (did you mean 'wait.slave.wrote'?)",
		bp + ": unknown key 'jdbc.url' (it belongs in datasource.properties)",
		bp + ": unknown key 'zzz.totally.different'",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("unknown keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(rep.Ignored) != 2 || rep.Ignored[0].Key != "action.checkpoint.interval" || rep.Ignored[1].Key != "jdbc.driverClassName" ||
		!strings.Contains(rep.Ignored[1].String(), "the driver is built in") {
		t.Errorf("ignored keys: %+v", rep.Ignored)
	}
	if err == nil || err.Error() != "--set: unknown key 'sync.prot' (did you mean 'sync.port'?): fix or remove it" {
		t.Errorf("--set error: %v", err)
	}
	// Every key known: nothing to say.
	write(t, dir, "ok.properties", "broker.port=1\n")
	f, _ := LoadFile(dir, "ok.properties")
	r = NewReader(f, Lookup{Env: noEnv})
	r.Int("broker.port", 0, 0, 65535)
	if rep, err := CheckKeys(nil, r); err != nil || len(rep.Unknown)+len(rep.Ignored) != 0 {
		t.Errorf("clean file: %+v %v", rep, err)
	}
}

func TestNearest(t *testing.T) {
	known := []string{"broker.port", "sync.port", "broker.http.port", "meta.server.endpoint", "wait.slave.wrote"}
	for key, want := range map[string]string{
		"brokr.port":          "broker.port",
		"broker.prot":         "broker.port",
		"BROKER.PORT":         "broker.port",
		"meta.server.endpont": "meta.server.endpoint",
		"sync_port":           "sync.port",
		"wait.slave.write":    "wait.slave.wrote",
		"something.else":      "",
		"x":                   "",
	} {
		if got := Nearest(key, known); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "t.properties", "# comment\n\nfirst=1\nlong=a\\\n  b\n<token 1>=ops\n  indented : x\n")
	f, _ := LoadFile(dir, "t.properties")
	for key, want := range map[string]int{"first": 3, "long": 4, "<token": 6, "indented": 7, "absent": 0} {
		if got := f.Line(key); got != want {
			t.Errorf("Line(%q) = %d, want %d", key, got, want)
		}
	}
}
