package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMeta answers every post with answer and records the last form and
// token.
type fakeMeta struct {
	mu     sync.Mutex
	form   url.Values
	token  string
	answer string
}

func (f *fakeMeta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.form, f.token = r.PostForm, r.Header.Get("X-Api-Token")
	_, _ = w.Write([]byte(f.answer + "\n"))
}

func (f *fakeMeta) last() (url.Values, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.form, f.token
}

func startFake(t *testing.T, answer string) (*fakeMeta, *Client) {
	t.Helper()
	f := &fakeMeta{answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, New(srv.URL, "tok")
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestManagementURL(t *testing.T) {
	for in, want := range map[string]string{
		"meta":                    "http://meta:8080/management",
		"meta:9090":               "http://meta:9090/management",
		"http://127.0.0.1:1/":     "http://127.0.0.1:1/management",
		"https://meta":            "http://meta:8080/management",
		"[::1]:8081":              "http://[::1]:8081/management",
		"10.0.0.1":                "http://10.0.0.1:8080/management",
		"http://meta.example:80/": "http://meta.example:80/management",
	} {
		if got := ManagementURL(in); got != want {
			t.Errorf("ManagementURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAddBrokerPostsQMQForm: the form is QMQ's, field for field, with
// ifAbsent only when asked for, and the token in X-Api-Token.
func TestAddBrokerPostsQMQForm(t *testing.T) {
	f, c := startFake(t, `{"status":0,"message":"warning: ip 127.0.0.1 is a loopback address","data":{"group":"g1","role":"MASTER","hostname":"h1","ip":"127.0.0.1","servePort":20881,"syncPort":20882}}`)
	spec := BrokerSpec{Group: "g1", Role: RoleMaster, Hostname: "h1", IP: "127.0.0.1", ServePort: 20881, SyncPort: 20882}
	b, msg, err := c.AddBroker(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := Broker{Group: "g1", Role: "MASTER", Hostname: "h1", IP: "127.0.0.1", ServePort: 20881, SyncPort: 20882}
	if b != want || !strings.HasPrefix(msg, "warning:") {
		t.Errorf("got %+v %q; want %+v and the warning", b, msg, want)
	}
	form, token := f.last()
	qmq := url.Values{"action": {"AddBroker"}, "brokerGroup": {"g1"}, "role": {"0"}, "hostname": {"h1"}, "ip": {"127.0.0.1"},
		"servePort": {"20881"}, "syncPort": {"20882"}}
	if form.Encode() != qmq.Encode() || token != "tok" {
		t.Errorf("posted %s with token %q; want %s with tok", form.Encode(), token, qmq.Encode())
	}
	spec.IfAbsent = true
	if _, _, err := c.AddBroker(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	if form, _ := f.last(); form.Get("ifAbsent") != "true" {
		t.Errorf("IfAbsent posted %s", form.Encode())
	}
}

// TestRefusalsQuoteTheMetaserver: each shape of refusal is an *Error whose
// text is the metaserver's.
func TestRefusalsQuoteTheMetaserver(t *testing.T) {
	for _, c := range []struct {
		answer, want string
		call         func(*Client) error
	}{
		{`{"status":-1,"message":"cannot swap: no slave","data":null}`, "metaserver refused SwapMasterSlave: cannot swap: no slave",
			func(c *Client) error { _, err := c.SwapMasterSlave(context.Background(), "g1"); return err }},
		{`{"error":"subject \"s\" has no route yet"}`, `metaserver refused AddSubjectBrokerGroup: subject "s" has no route yet`,
			func(c *Client) error { _, err := c.AddSubjectBrokerGroup(context.Background(), "s", "g1"); return err }},
		{"不支持的 action: X (supported: …)", "metaserver refused MarkReadonlyBrokerGroup: 不支持的 action: X (supported: …)",
			func(c *Client) error { return c.MarkReadonly(context.Background(), "g1", "*") }},
	} {
		_, cl := startFake(t, c.answer)
		err := c.call(cl)
		var e *Error
		if !errors.As(err, &e) || err.Error() != c.want {
			t.Errorf("answer %s: error %v; want *Error %q", c.answer, err, c.want)
		}
	}
}

// TestAnswerShapes: bare lists, a bare route and QMQ's ActionResult all
// decode.
func TestAnswerShapes(t *testing.T) {
	_, c := startFake(t, `[{"groupName":"g1","master":"127.0.0.1:1","slaves":[],"updateTime":5,"brokerState":"RW","tag":"","kind":"NORMAL","ext":null}]`)
	groups, err := c.ListBrokerGroups(ctx(t))
	if err != nil || len(groups) != 1 || groups[0].GroupName != "g1" || groups[0].BrokerState != "RW" {
		t.Errorf("ListBrokerGroups: %+v %v", groups, err)
	}
	_, c = startFake(t, `{"subject":"s","brokerGroups":["g1","g2"],"version":2,"updateTime":7}`)
	route, err := c.AddSubjectBrokerGroup(ctx(t), "s", "g2")
	if err != nil || route.Subject != "s" || len(route.BrokerGroups) != 2 || route.Version != 2 {
		t.Errorf("AddSubjectBrokerGroup: %+v %v", route, err)
	}
	_, c = startFake(t, `{"status":0,"message":"success: moved","data":[{"brokerGroup":"g1","nextSequence":4}]}`)
	res, err := c.ResetOffset(ctx(t), ResetSpec{Subject: "s", Group: "g", Code: ResetTimestamp, At: time.UnixMilli(1000)})
	if err != nil || res.Message != "success: moved" || len(res.Groups) != 1 || res.Groups[0].NextSequence != 4 {
		t.Errorf("ResetOffset: %+v %v", res, err)
	}
	_, c = startFake(t, `{"status":0,"message":"","data":"success"}`)
	if _, err := c.ResetOffset(ctx(t), ResetSpec{Subject: "s", Group: "g", Code: ResetEarliest}); err != nil {
		t.Errorf("ResetOffset earliest: %v", err)
	}
}

// TestTransportErrors: an unreachable metaserver and a non-200 answer are
// errors naming the endpoint, not *Error.
func TestTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "too big", http.StatusRequestEntityTooLarge)
	}))
	defer srv.Close()
	_, err := New(srv.URL, "").ListBrokers(ctx(t), "")
	var e *Error
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "answered HTTP 413") {
		t.Errorf("HTTP 413: %v", err)
	}
	srv.Close()
	if _, err := New(srv.URL, "").ListBrokers(ctx(t), ""); err == nil || !strings.Contains(err.Error(), "cannot reach the metaserver at "+ManagementURL(srv.URL)) {
		t.Errorf("closed server: %v", err)
	}
	var ae *AddressError
	if _, err := New("bad host", "").Post(ctx(t), url.Values{}); !errors.As(err, &ae) {
		t.Errorf("address with a space: %v; want *AddressError", err)
	}
}
