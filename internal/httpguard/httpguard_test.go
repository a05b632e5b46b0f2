package httpguard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/testlog"
)

// serve starts a guarded server with cfg on a loopback port; its handler
// parses the form and answers the action parameter.
func serve(t *testing.T, cfg Config) (*Guard, string, *testlog.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	g := New(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ParseForm(w, r) {
			return
		}
		fmt.Fprintf(w, "action=%s", Clip(r.FormValue("action"), 100))
	}), cfg)
	go g.Server.Serve(g.Listener)
	t.Cleanup(func() { g.Server.Close() })
	return g, ln.Addr().String(), logs
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

// closedWithin reads until the server closes nc, failing after limit.
func closedWithin(t *testing.T, nc net.Conn, limit time.Duration, what string) {
	t.Helper()
	start := time.Now()
	nc.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: connection still open after %v", what, limit)
	}
}

// A client sending its body slowly is cut off at the read timeout.
func TestSlowBodyIsCut(t *testing.T) {
	_, addr, _ := serve(t, Config{ReadTimeout: 300 * time.Millisecond})
	nc := dialRaw(t, addr)
	fmt.Fprintf(nc, "POST /management HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\naction=")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if _, err := nc.Write([]byte("a")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	closedWithin(t, nc, 2*time.Second, "slow body")
	<-done
}

// An idle keep-alive connection is closed at the idle timeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	_, addr, _ := serve(t, Config{IdleTimeout: 300 * time.Millisecond})
	nc := dialRaw(t, addr)
	fmt.Fprintf(nc, "GET /?action=x HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("first request: %s (close %v); want 200 on a kept-alive connection", resp.Status, resp.Close)
	}
	start := time.Now()
	closedWithin(t, nc, 2*time.Second, "idle keep-alive")
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("keep-alive closed after %v; want the 300ms idle timeout", took)
	}
}

// A body over the limit is 413, whether announced or chunked, and a long
// parameter is 400 without being echoed.
func TestBodyAndParameterLimits(t *testing.T) {
	_, addr, _ := serve(t, Config{MaxBodyBytes: 1 << 10, MaxParamBytes: 256})
	post := func(body io.Reader, length int64) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/management", body)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	big := "action=" + strings.Repeat("a", 2000)
	if code, body := post(strings.NewReader(big), int64(len(big))); code != http.StatusRequestEntityTooLarge || strings.Contains(body, "aaaa") {
		t.Fatalf("announced oversize body: %d %q; want 413 without the body", code, body)
	}
	if code, body := post(io.MultiReader(strings.NewReader(big)), -1); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked oversize body: %d %q; want 413", code, body)
	}
	long := "action=" + strings.Repeat("b", 500)
	if code, body := post(strings.NewReader(long), int64(len(long))); code != http.StatusBadRequest || strings.Contains(body, "bbbb") || !strings.Contains(body, "500 bytes") {
		t.Fatalf("long parameter: %d %q; want 400 naming its length, not echoing it", code, body)
	}
	resp, err := http.Get("http://" + addr + "/management?action=" + url.QueryEscape(strings.Repeat("c", 500)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "cccc") {
		t.Fatalf("long query parameter: %d %q; want 400 without echo", resp.StatusCode, b)
	}
	if code, body := post(strings.NewReader("action=ok"), -1); code != http.StatusOK || body != "action=ok" {
		t.Fatalf("small form: %d %q", code, body)
	}
}

// With MaxConnections open, one more is answered 503 and counted; the
// open ones keep working.
func TestConnectionLimit(t *testing.T) {
	g, addr, logs := serve(t, Config{MaxConnections: 2})
	var open []net.Conn
	var readers []*bufio.Reader
	for range 2 {
		nc := dialRaw(t, addr)
		open = append(open, nc)
		readers = append(readers, bufio.NewReader(nc))
	}
	request := func(i int) int {
		fmt.Fprintf(open[i], "GET /?action=x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range open {
		if code := request(i); code != http.StatusOK {
			t.Fatalf("connection %d: %d", i, code)
		}
	}
	extra := dialRaw(t, addr)
	resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v %v; want 503", resp, err)
	}
	if g.Listener.Refused() != 1 {
		t.Fatalf("Refused() = %d, want 1", g.Listener.Refused())
	}
	if l := logs.String(); !strings.Contains(l, "max_connections=2") || !strings.Contains(l, extra.LocalAddr().String()) {
		t.Fatalf("no log line naming the limit and the peer:\n%s", l)
	}
	for i := range open {
		if code := request(i); code != http.StatusOK {
			t.Fatalf("connection %d after the refusal: %d", i, code)
		}
	}
	open[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for g.Listener.Open() > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	nc := dialRaw(t, addr)
	fmt.Fprintf(nc, "GET /?action=y HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(nc), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a freed slot: %v %v", resp, err)
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short", 10); got != "short" {
		t.Fatal(got)
	}
	if got := Clip(strings.Repeat("x", 1<<20), 8); got != "xxxxxxxx… (1048576 bytes)" {
		t.Fatal(got)
	}
	if got := Clip("ééé", 3); got != "é… (6 bytes)" {
		t.Fatal(got)
	}
}
