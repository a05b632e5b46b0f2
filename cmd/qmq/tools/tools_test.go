package tools

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// TestAddBrokerForm: AddBroker posts QMQ's form parameters, exactly, unless
// --ifAbsent (ours) is given, which adds ifAbsent=true.
func TestAddBrokerForm(t *testing.T) {
	var mu sync.Mutex
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		mu.Lock()
		got = r.PostForm
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status":0,"message":"","data":{}}`))
	}))
	defer srv.Close()
	base := []string{"AddBroker", "--metaserver=" + strings.TrimPrefix(srv.URL, "http://"), "--token=t", "--brokerGroup=g1", "--role=0",
		"--hostname=h1", "--ip=10.0.0.1", "--servePort=20881", "--syncPort=20882"}
	qmq := url.Values{"action": {"AddBroker"}, "brokerGroup": {"g1"}, "role": {"0"}, "hostname": {"h1"}, "ip": {"10.0.0.1"},
		"servePort": {"20881"}, "syncPort": {"20882"}}
	for _, c := range []struct {
		args []string
		want url.Values
	}{
		{base, qmq},
		{append(base[:len(base):len(base)], "--ifAbsent"), withParam(qmq, "ifAbsent", "true")},
		{append(base[:len(base):len(base)], "--ifAbsent=false"), qmq},
	} {
		var out, errOut bytes.Buffer
		if code := Main(c.args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s %s", c.args, code, out.String(), errOut.String())
		}
		mu.Lock()
		if got.Encode() != c.want.Encode() {
			t.Errorf("%v posted %s, want %s", c.args[len(c.args)-1], got.Encode(), c.want.Encode())
		}
		mu.Unlock()
	}
}

func withParam(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for key, vs := range v {
		out[key] = append([]string(nil), vs...)
	}
	out.Set(k, val)
	return out
}

// TestUsageOnce: --help prints a command's usage once, to stdout, and exits
// 0; a bad flag prints the error and the usage once, to stderr, and exits 2.
func TestUsageOnce(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"AddBroker", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("--help exited %d, want 0", code)
	}
	if n := strings.Count(out.String(), "Usage: qmq tools AddBroker"); n != 1 || errOut.Len() != 0 {
		t.Fatalf("--help: usage %d times on stdout (want 1), stderr %q", n, errOut.String())
	}
	out.Reset()
	if code := Main([]string{"AddBroker", "--nosuchflag=1"}, &out, &errOut); code != 2 {
		t.Fatalf("bad flag exited %d, want 2", code)
	}
	if n := strings.Count(errOut.String(), "Usage: qmq tools AddBroker"); n != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), "nosuchflag") {
		t.Fatalf("bad flag: stderr %q (want the error and the usage once), stdout %q", errOut.String(), out.String())
	}
}

// TestTokenFromEnvironment: without --token the token comes from
// QMQ_TOOLS_TOKEN; --token wins over it; with neither the command refuses,
// naming both.
func TestTokenFromEnvironment(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Api-Token"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status":0,"message":"","data":{}}`))
	}))
	defer srv.Close()
	args := []string{"MarkReadonly", "--metaserver=" + strings.TrimPrefix(srv.URL, "http://"), "--brokerGroup=g1"}
	var out, errOut bytes.Buffer
	t.Setenv(TokenEnv, "from-env")
	if code := Main(args, &out, &errOut); code != 0 {
		t.Fatalf("with %s: exit %d: %s", TokenEnv, code, errOut.String())
	}
	if code := Main(append(args, "--token=from-flag"), &out, &errOut); code != 0 {
		t.Fatalf("with --token: exit %d: %s", code, errOut.String())
	}
	mu.Lock()
	if len(got) != 2 || got[0] != "from-env" || got[1] != "from-flag" {
		t.Errorf("tokens sent %q, want [from-env from-flag]", got)
	}
	mu.Unlock()
	t.Setenv(TokenEnv, "")
	errOut.Reset()
	if code := Main(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--token (or "+TokenEnv+")") {
		t.Errorf("without a token: exit %d, stderr %q; want 2 naming --token and %s", code, errOut.String(), TokenEnv)
	}
}
