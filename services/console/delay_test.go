package console_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/delay"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
	"github.com/qmq-go/qmq/tests/framework"
)

// startDelayServer runs a delay server registered as DELAY_MASTER of group
// with c's metaserver until the test ends.
func startDelayServer(t *testing.T, m *metatest.Server, group string, change ...func(*delay.Settings)) *delay.Server {
	t.Helper()
	s := delay.DefaultSettings()
	s.MetaEndpoint = m.Endpoint()
	s.Port, s.SyncPort, s.HTTPPort = 0, 0, 0
	s.MetaRetry, s.HeartbeatInterval = 100*time.Millisecond, 200*time.Millisecond
	s.Store.Root = filepath.Join(t.TempDir(), "delay")
	s.Store.MessageSegmentSize = 16 << 20
	for _, f := range change {
		f(&s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := delay.New(ctx, s, delay.Options{Logger: testlog.Logger(t, "delay", hclog.Warn), Hostname: "console-test-delay"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	m.AddBroker(group, int(protocol.RoleDelayMaster), "console-test-delay", srv.Port())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("delay server: %v", err)
		}
	})
	testutil.Eventually(t, 15*time.Second, "the delay server to go online", srv.Online)
	return srv
}

// TestDelayPagePendingPerSubject: a real delay server holds messages of
// two subjects due in an hour and in two days; the console's delay page
// shows its group's table with each subject's pending count and earliest
// due time, and the server row's whole-store total.
func TestDelayPagePendingPerSubject(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	srv := startDelayServer(t, c.Meta(), "console_delay")
	s := clusterSettings(c)
	_, httpPort, _ := net.SplitHostPort(srv.HTTPAddr().String())
	p, _ := strconv.Atoi(httpPort)
	s.BrokerHTTPPorts[net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port()))] = p
	base, _ := startConsole(t, s)
	auth := map[string]string{"X-Api-Token": testToken}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := client.NewProducer(ctx, c.Endpoint(), client.WithSendTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prod.Close(context.Background()) }()
	hour := time.Now().Add(time.Hour).Truncate(time.Second)
	days := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	var msgs []*client.Message
	for i := 0; i < 3; i++ {
		msgs = append(msgs, prod.NewMessage("console.later").SetBody(fmt.Sprint(i)).SetDelayUntil(hour.Add(time.Duration(i)*time.Minute)))
	}
	for i := 0; i < 2; i++ {
		msgs = append(msgs, prod.NewMessage("console.much.later").SetBody(fmt.Sprint(i)).SetDelayUntil(days))
	}
	if err := prod.Send(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	row := func(body, subject string) []string {
		re := regexp.MustCompile(`<tr data-subject="` + regexp.QuoteMeta(subject) + `"><td>[^<]*</td><td class="pending">(\d+)</td><td class="due[^"]*">([^<]*)</td></tr>`)
		return re.FindStringSubmatch(body)
	}
	// The page reads the server's /health (its row) and /subjects (the
	// table) one after the other: wait until both have seen the sends.
	serverRow := regexp.MustCompile(`<td>5</td><td>2</td>`)
	var body string
	testutil.EventuallyState(t, 10*time.Second, "the delay page to show both subjects and the server's total", func() (bool, string) {
		_, body, _ = get(t, base+"/delay", auth)
		return row(body, "console.later") != nil && row(body, "console.much.later") != nil && serverRow.MatchString(body), body
	})
	if !strings.Contains(body, `<table class="delay-subjects" data-group="console_delay">`) || !strings.Contains(body, "5 pending · from DELAY_MASTER 127.0.0.1:"+httpPort) {
		t.Errorf("the delay page lacks console_delay's table or its total:\n%s", body)
	}
	if r := row(body, "console.later"); r[1] != "3" || r[2] != hour.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
		t.Errorf("console.later: %q; want 3 pending, earliest %v", r[1:], hour.UTC())
	}
	if r := row(body, "console.much.later"); r[1] != "2" || r[2] != days.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
		t.Errorf("console.much.later: %q; want 2 pending, earliest %v", r[1:], days.UTC())
	}
	// The server row: the whole-store total and the number of subjects.
	if !serverRow.MatchString(body) {
		t.Errorf("the delay server row does not show 5 pending in 2 subjects:\n%s", body)
	}
}
