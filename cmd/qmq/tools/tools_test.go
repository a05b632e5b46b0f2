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
