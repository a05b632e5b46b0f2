package metaserver

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/services/delay/delayadmin"
)

// TestCancelDelayRefusals: CancelDelay checks its parameters, refuses
// without delay.admin.secret, says when no delay group is registered, and
// names a delay master that does not answer.
func TestCancelDelayRefusals(t *testing.T) {
	none := startServer(t, nil)
	// qmq tools checks names before sending; the metaserver checks them too.
	for form, want := range map[string]string{
		"action=CancelDelay&subject=a%25b&messageId=x": "illegal subject",
		"action=CancelDelay&subject=order":             "please provide the message id",
	} {
		if out := postManagement(t, none, form); !strings.Contains(out, want) || !strings.Contains(out, `"status":-1`) {
			t.Errorf("%s: %s; want %q", form, out, want)
		}
	}
	if out, code := none.tools("CancelDelay", "--token="+testToken, "--subject=order", "--messageId=x"); code == 0 || !strings.Contains(out, "no delay.admin.secret") {
		t.Errorf("without delay.admin.secret: exit %d: %s", code, out)
	}

	h := startServer(t, func(s *Settings, _ *Dynamic) { s.DelayAdminSecret = delayadmin.NewSecret("0123456789abcdef0123") })
	if out, code := h.tools("CancelDelay", "--token="+testToken, "--subject=order", "--messageId=x"); code == 0 || !strings.Contains(out, "no delay group is registered") {
		t.Errorf("without delay groups: exit %d: %s", code, out)
	}
	// A registered delay master that nothing listens for.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	if out, code := h.tools("AddBroker", "--token="+testToken, "--brokerGroup=d1", "--role=5", "--hostname=dh", "--ip=127.0.0.1",
		"--servePort="+strconv.Itoa(port), "--syncPort="+strconv.Itoa(port+1)); code != 0 {
		t.Fatalf("AddBroker: %s", out)
	}
	out, code := h.tools("CancelDelay", "--token="+testToken, "--subject=order", "--messageId=x")
	if code == 0 || !strings.Contains(out, "not confirmed") || !strings.Contains(out, "delay group d1") {
		t.Errorf("a delay master that does not answer: exit %d: %s", code, out)
	}
}
