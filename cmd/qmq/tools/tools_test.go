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

// TestIllegalNamesRefusedLocally: a subject or consumer group that is not a
// legal name is refused before anything is posted, with exit code 2 and a
// message naming the flag, the character and its position, and the
// alphabet; legal names, "*" where it means all subjects, and a retry
// subject for ResetOffset are posted.
func TestIllegalNamesRefusedLocally(t *testing.T) {
	var mu sync.Mutex
	posted := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posted++
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status":0,"message":"","data":{}}`))
	}))
	defer srv.Close()
	ms := "--metaserver=" + strings.TrimPrefix(srv.URL, "http://")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"AddNewSubject", "--subject= ", "--tag=t"}, "--subject: illegal subject \" \": a space (U+0020) at position 1"},
		{[]string{"AddNewSubject", "--subject=order created", "--tag=t"}, "a space (U+0020) at position 6"},
		{[]string{"AddNewSubject", "--subject=*", "--tag=t"}, "'*' (U+002A) at position 1"},
		{[]string{"AddNewSubject", "--subject=a;b", "--tag=t"}, "';' (U+003B) at position 2"},
		{[]string{"AddNewSubject", "--subject=%RETRY%a%g", "--tag=t"}, "reserved"},
		{[]string{"AddSubjectBrokerGroup", "--brokerGroup=g1", "--subject=a/b"}, "'/' (U+002F) at position 2"},
		{[]string{"ExtendSubjectRoute", "--relatedSubject=a'b", "--relatedBrokerGroup=g1", "--newBrokerGroup=g2"}, "at position 2"},
		{[]string{"MarkReadonly", "--brokerGroup=g1", "--subject=a b"}, "at position 2"},
		{[]string{"ResetOffset", "--subject=order", "--group=g%x", "--action=1"}, "--group: illegal consumer group \"g%x\": character '%' (U+0025) at position 2"},
	} {
		var out, errOut bytes.Buffer
		code := Main(append([]string{c.args[0], ms, "--token=t"}, c.args[1:]...), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), c.want) || !strings.Contains(errOut.String(), "A-Z a-z, digits 0-9, '.', '_' and '-'") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q with the alphabet", c.args, code, errOut.String(), c.want)
		}
	}
	mu.Lock()
	if posted != 0 {
		t.Errorf("%d requests reached the metaserver; want none", posted)
	}
	mu.Unlock()
	for _, args := range [][]string{
		{"AddNewSubject", "--subject=order.created-v2_0", "--tag=t"},
		{"AddNewSubject", "--subject=" + strings.Repeat("s", 100), "--tag=t"},
		{"MarkReadonly", "--brokerGroup=g1"},
		{"ExtendSubjectRoute", "--relatedSubject=*", "--relatedBrokerGroup=g1", "--newBrokerGroup=g2"},
		{"ResetOffset", "--subject=%RETRY%order%g", "--group=g", "--action=2"},
		{"RemoveSubjectBrokerGroup", "--brokerGroup=g1", "--subject=legacy name"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(append([]string{args[0], ms, "--token=t"}, args[1:]...), &out, &errOut); code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}
