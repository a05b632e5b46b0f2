package metaserver

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// /management answers an oversize body 413 (it answered 200 "need provide
// action param": the parse error read as a missing action) and never
// echoes a long parameter whole.
func TestManagementBodyAndParameterLimits(t *testing.T) {
	h := startServer(t, nil)
	post := func(form string) (int, string) {
		resp, err := http.Post("http://"+h.httpAddr()+"/management", "application/x-www-form-urlencoded", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	huge := strings.Repeat("z", 2<<20)
	if code, body := post("action=ListBrokers&pad=" + huge); code != http.StatusRequestEntityTooLarge || len(body) > 1000 {
		t.Fatalf("2 MiB body: %d, %d bytes %.200q; want 413 and a short answer", code, len(body), body)
	}
	long := strings.Repeat("q", 1<<20-100)
	if code, body := post("action=" + url.QueryEscape(long)); code != http.StatusBadRequest || strings.Contains(body, "qqqq") || len(body) > 1000 {
		t.Fatalf("1 MiB action: %d, %d bytes %.200q; want 400 without the value", code, len(body), body)
	}
	code, body := post("action=" + strings.Repeat("w", 3000))
	if code != http.StatusOK || !strings.Contains(body, "不支持的 action") || !strings.Contains(body, "(3000 bytes)") || strings.Contains(body, strings.Repeat("w", 101)) {
		t.Fatalf("unknown 3000-byte action: %d %.300q; want the action clipped with its length", code, body)
	}
	if logs := h.logs.String(); strings.Contains(logs, strings.Repeat("q", 200)) || strings.Contains(logs, strings.Repeat("z", 200)) {
		t.Fatal("a long parameter was logged whole")
	}
	if code, body := post("action=ListBrokers"); code != http.StatusOK || strings.Contains(body, "need provide") {
		t.Fatalf("ListBrokers after the refusals: %d %q", code, body)
	}
}

// max.connections bounds meta.server.port: one more connection is closed
// at once, logged with the limit and the peer.
func TestTCPMaxConnections(t *testing.T) {
	h := startServer(t, func(s *Settings, _ *Dynamic) { s.Limits.MaxConnections = 1 })
	first, err := net.Dial("tcp", h.tcpAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testutil.Eventually(t, 5*time.Second, "the first connection to be accepted", func() bool { return h.srv.tcp.Stats().Connections == 1 })
	second, err := net.Dial("tcp", h.tcpAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection beyond max.connections=1: %v; want it closed (EOF)", err)
	}
	testutil.Eventually(t, 5*time.Second, "the refusal log line", func() bool {
		return strings.Contains(h.logs.String(), "max_connections=1")
	})
	_, metrics := h.get("/metrics")
	if !strings.Contains(metrics, "qmq_meta_tcp_connections_refused_total") {
		t.Fatal("/metrics lacks qmq_meta_tcp_connections_refused_total")
	}
}
