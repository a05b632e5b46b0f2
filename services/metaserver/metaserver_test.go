package metaserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

func TestAddBrokerValidation(t *testing.T) {
	h := startServer(t, nil)
	tok := "--token=" + testToken
	h.addBroker("group1", 0, "host-a", "10.0.0.1", 20881, 20882)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"same ports", []string{"--brokerGroup=g2", "--role=0", "--hostname=h", "--ip=10.0.0.2", "--servePort=20881", "--syncPort=20881"}, "servePort and syncPort are both 20881"},
		{"delay role in real-time group", []string{"--brokerGroup=group1", "--role=5", "--hostname=host-b", "--ip=10.0.0.3", "--servePort=20801", "--syncPort=20802"}, "real-time and delay groups must have different names"},
		{"second master", []string{"--brokerGroup=group1", "--role=0", "--hostname=host-c", "--ip=10.0.0.4", "--servePort=20881", "--syncPort=20882"}, "ReplaceBroker"},
		{"same host and port", []string{"--brokerGroup=group2", "--role=0", "--hostname=host-a", "--ip=10.0.0.1", "--servePort=20881", "--syncPort=20892"}, "each broker process on a host needs its own servePort"},
		{"bad role", []string{"--brokerGroup=group3", "--role=9", "--hostname=x", "--ip=10.0.0.9", "--servePort=1", "--syncPort=2"}, "invalid broker role code 9"},
		{"delay backup", []string{"--brokerGroup=group3", "--role=7", "--hostname=x", "--ip=10.0.0.9", "--servePort=1", "--syncPort=2"}, "not supported"},
		{"bad ip", []string{"--brokerGroup=group3", "--role=0", "--hostname=x", "--ip=qmq-server01", "--servePort=1", "--syncPort=2"}, "not an IPv4 address"},
	}
	for _, c := range cases {
		out, code := h.tools(append([]string{"AddBroker", tok}, c.args...)...)
		if code == 0 || !strings.Contains(out, `"status":-1`) || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output %s; want status -1 mentioning %q", c.name, code, out, c.want)
		}
	}
	// The guide's second example (002_*): everything on localhost — accepted with a warning.
	out, code := h.tools("AddBroker", tok, "--brokerGroup=local", "--role=0", "--hostname=localhost", "--ip=127.0.0.1", "--servePort=30881", "--syncPort=30882")
	if code != 0 || !strings.Contains(out, `"message":"warning: ip 127.0.0.1 is a loopback address`) {
		t.Fatalf("loopback: exit %d, output %s", code, out)
	}
}

func TestAcquireMetaForUnknownBrokerExplainsTheFix(t *testing.T) {
	h := startServer(t, nil)
	h.addBroker("qmq_group01", 0, "qmq-server01", "172.168.2.27", 20881, 20882)
	c := h.metaClient()
	ctx := context.Background()
	_, err := c.AcquireMeta(ctx, "qmq-server1", 20881, 20882)
	var me *meta.Error
	if !errors.As(err, &me) {
		t.Fatalf("want *meta.Error, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"cannot find broker meta for qmq-server1:20881",
		"qmq-server01:20881 (group qmq_group01, MASTER, ip 172.168.2.27)",
		"qmq tools AddBroker --metaserver=" + h.httpAddr(),
		"--hostname=qmq-server1",
		"--servePort=20881 --syncPort=20882",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error should be one line:\n%s", msg)
	}
	if !strings.Contains(h.logs.String(), "broker request BROKER_ACQUIRE_META") {
		t.Errorf("metaserver should log the hostname/port it was asked for, as QMQ does")
	}
}

func TestAcquireMetaRoles(t *testing.T) {
	h := startServer(t, nil)
	h.addBroker("g1", 0, "m1", "10.0.0.1", 20881, 20882)
	h.addBroker("g1", 1, "s1", "10.0.0.2", 20881, 20882)
	h.addBroker("g1", 4, "b1", "10.0.0.3", 20881, 20883)
	h.addBroker("d1", 6, "ds1", "10.0.0.5", 20801, 20802)
	c := h.metaClient()
	ctx := context.Background()
	cases := []struct {
		host   string
		port   int
		role   int32
		master string
	}{
		{"m1", 20881, 0, ""},
		{"s1", 20881, 1, "10.0.0.1:20882"},
		{"b1", 20881, 4, "10.0.0.2:20882"},
	}
	for _, cs := range cases {
		r, err := c.AcquireMeta(ctx, cs.host, cs.port, 0)
		if err != nil {
			t.Fatalf("%s: %v", cs.host, err)
		}
		if r.GroupName != "g1" || r.Role != cs.role || r.MasterAddress != cs.master {
			t.Errorf("%s: got %+v", cs.host, r)
		}
		// Ours: a master learns where its group's slave is registered (its sync port checks it).
		if wantKnown := cs.role == 0; r.SlaveKnown != wantKnown || wantKnown && r.SlaveAddress != "10.0.0.2:20882" {
			t.Errorf("%s: slave address %q known %v", cs.host, r.SlaveAddress, r.SlaveKnown)
		}
	}
	// A delay slave registered before its master: the answer says what is missing.
	_, err := c.AcquireMeta(ctx, "ds1", 20801, 0)
	if err == nil || !strings.Contains(err.Error(), "has no DELAY_MASTER row") {
		t.Fatalf("delay slave without master: %v", err)
	}
}

func online(t *testing.T, c *meta.Client, group, addr string, role int32) {
	t.Helper()
	if err := c.RegisterBroker(context.Background(), protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestOnline, GroupName: group, BrokerAddress: addr, Role: role, State: 1}); err != nil {
		t.Fatal(err)
	}
}

func heartbeat(t *testing.T, c *meta.Client, group, addr string, role int32) {
	t.Helper()
	if err := c.RegisterBroker(context.Background(), protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestHeartbeat, GroupName: group, BrokerAddress: addr, Role: role, State: 1}); err != nil {
		t.Fatal(err)
	}
}

type groupJSON struct {
	GroupName   string `json:"groupName"`
	Master      string `json:"master"`
	BrokerState string `json:"brokerState"`
	Kind        string `json:"kind"`
}

func (h *harness) groupStates() map[string]string {
	h.t.Helper()
	out := h.mustTool("ListBrokerGroups")
	var gs []groupJSON
	if err := json.Unmarshal([]byte(out), &gs); err != nil {
		h.t.Fatalf("ListBrokerGroups: %v: %s", err, out)
	}
	m := map[string]string{}
	for _, g := range gs {
		m[g.GroupName] = g.BrokerState
	}
	return m
}

func TestHeartbeatTimeoutMarksGroupNRW(t *testing.T) {
	h := startServer(t, func(_ *Settings, d *Dynamic) { d.HeartbeatTimeout = 1500 * time.Millisecond })
	c := h.metaClient()
	online(t, c, "g1", "10.0.0.1:20881", 0)
	online(t, c, "g2", "10.0.0.2:20881", 0)
	if s := h.groupStates(); s["g1"] != "RW" || s["g2"] != "RW" {
		t.Fatalf("after ONLINE: %v", s)
	}
	// g1 keeps beating, g2 goes silent.
	deadline := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(deadline) {
		heartbeat(t, c, "g1", "10.0.0.1:20881", 0)
		time.Sleep(300 * time.Millisecond)
	}
	if s := h.groupStates(); s["g1"] != "RW" || s["g2"] != "NRW" {
		t.Fatalf("after g2 went silent: %v (want g1 RW, g2 NRW)", s)
	}
	heartbeat(t, c, "g2", "10.0.0.2:20881", 0)
	if s := h.groupStates(); s["g2"] != "RW" {
		t.Fatalf("heartbeat should revive g2: %v", s)
	}
	// OFFLINE is immediate.
	if err := c.RegisterBroker(context.Background(), protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestOffline, GroupName: "g1", BrokerAddress: "10.0.0.1:20881", Role: 0, State: 1}); err != nil {
		t.Fatal(err)
	}
	if s := h.groupStates(); s["g1"] != "NRW" {
		t.Fatalf("after OFFLINE: %v", s)
	}
}

func register(t *testing.T, c *meta.Client, subject string, clientType int32, group, clientID string) protocol.ClientRegisterResponse {
	t.Helper()
	r, err := c.RegisterClient(context.Background(), protocol.ClientRegisterRequest{Subject: subject, ClientTypeCode: clientType, AppCode: "app", ClientID: clientID, ConsumerGroup: group, RequestType: protocol.ClientRequestOnline, ClientLDC: "room1"})
	if err != nil {
		t.Fatalf("register %s: %v", subject, err)
	}
	return r
}

func names(r protocol.ClientRegisterResponse) []string {
	var out []string
	for _, g := range r.Groups {
		out = append(out, g.Name)
	}
	slices.Sort(out)
	return out
}

func TestClientRouting(t *testing.T) {
	h := startServer(t, nil)
	c := h.metaClient()
	for _, g := range []string{"g1", "g2", "g3"} {
		online(t, c, g, "10.0.0.1:2088"+g[1:], 0)
	}
	online(t, c, "delay1", "10.0.0.9:20801", 5)

	p := register(t, c, "order.created", protocol.ClientTypeProducer, "", "p1")
	if len(p.Groups) != 2 {
		t.Fatalf("min.group.num=2: producer got %v", names(p))
	}
	first := names(p)
	cons := register(t, c, "order.created", protocol.ClientTypeConsumer, "cg", "c1")
	if !slices.Equal(names(cons), first) {
		t.Fatalf("consumer route %v differs from producer route %v", names(cons), first)
	}
	for _, g := range cons.Groups {
		if g.MasterAddress == "" || g.State != 1 || g.UpdateTime == 0 {
			t.Errorf("group info incomplete: %+v", g)
		}
	}
	// Retry subjects share the real subject's route.
	retry := register(t, c, "%RETRY%order.created%cg", protocol.ClientTypeConsumer, "cg", "c1")
	if !slices.Equal(names(retry), first) {
		t.Fatalf("retry subject route %v, want %v", names(retry), first)
	}
	// Delay producers go to delay groups only.
	d := register(t, c, "order.created", protocol.ClientTypeDelayProducer, "", "p1")
	if !slices.Equal(names(d), []string{"delay1"}) {
		t.Fatalf("delay producer got %v", names(d))
	}
	// Readonly removes the group for producers only.
	h.mustTool("MarkReadonly", "--token="+testToken, "--brokerGroup="+first[0], "--subject=order.created")
	if got := names(register(t, c, "order.created", protocol.ClientTypeProducer, "", "p1")); slices.Contains(got, first[0]) || len(got) != 1 {
		t.Fatalf("producer after MarkReadonly %s: %v", first[0], got)
	}
	if got := names(register(t, c, "order.created", protocol.ClientTypeConsumer, "cg", "c1")); !slices.Equal(got, first) {
		t.Fatalf("consumer after MarkReadonly: %v, want %v", got, first)
	}
	h.mustTool("UnMarkReadonly", "--token="+testToken, "--brokerGroup="+first[0], "--subject=order.created")
	if got := names(register(t, c, "order.created", protocol.ClientTypeProducer, "", "p1")); !slices.Equal(got, first) {
		t.Fatalf("producer after UnMarkReadonly: %v", got)
	}
	// Routes are listed and can be extended by hand.
	routes := h.mustTool("ListSubjectRoutes")
	if !strings.Contains(routes, `"subject":"order.created"`) || !strings.Contains(routes, `"version":1`) {
		t.Fatalf("ListSubjectRoutes: %s", routes)
	}
	var other string
	for _, g := range []string{"g1", "g2", "g3"} {
		if !slices.Contains(first, g) {
			other = g
		}
	}
	out := h.mustTool("AddSubjectBrokerGroup", "--token="+testToken, "--brokerGroup="+other, "--subject=order.created")
	if !strings.Contains(out, `"version":2`) {
		t.Fatalf("AddSubjectBrokerGroup: %s", out)
	}
	if got := names(register(t, c, "order.created", protocol.ClientTypeProducer, "", "p1")); len(got) != 3 {
		t.Fatalf("after AddSubjectBrokerGroup: %v", got)
	}
	// /subject/consumers lists the registered consumer.
	_, body := h.get("/subject/consumers?subject=order.created")
	if !strings.Contains(body, `"consumerGroup":"cg"`) || !strings.Contains(body, "qmq://c1?room=room1&appCode=app") {
		t.Fatalf("/subject/consumers: %s", body)
	}
}

func TestTagRouting(t *testing.T) {
	h := startServer(t, func(_ *Settings, d *Dynamic) { d.MinGroupNum = 1 })
	c := h.metaClient()
	online(t, c, "plain", "10.0.0.1:20881", 0)
	online(t, c, "vip", "10.0.0.2:20881", 0)
	setTag(t, h, "vip", "vip")
	h.mustTool("AddNewSubject", "--token="+testToken, "--subject=pay", "--tag=vip")
	if err := h.srv.cache.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := names(register(t, c, "pay", protocol.ClientTypeProducer, "", "p")); !slices.Equal(got, []string{"vip"}) {
		t.Fatalf("tagged subject got %v", got)
	}
	if got := names(register(t, c, "misc", protocol.ClientTypeProducer, "", "p")); !slices.Equal(got, []string{"plain"}) {
		t.Fatalf("untagged subject got %v", got)
	}
}

func TestNoBrokerOnlineGivesActionableError(t *testing.T) {
	h := startServer(t, nil)
	c := h.metaClient()
	_, err := c.RegisterClient(context.Background(), protocol.ClientRegisterRequest{Subject: "s", ClientTypeCode: protocol.ClientTypeProducer, ClientID: "p", RequestType: protocol.ClientRequestOnline})
	if err == nil || !strings.Contains(err.Error(), "no real-time broker master has come online yet") {
		t.Fatalf("got %v", err)
	}
	_, err = c.RegisterClient(context.Background(), protocol.ClientRegisterRequest{Subject: strings.Repeat("x", 101), ClientTypeCode: protocol.ClientTypeProducer, ClientID: "p", RequestType: protocol.ClientRequestOnline})
	if err == nil || !strings.Contains(err.Error(), "over the limit of 100") {
		t.Fatalf("long subject: %v", err)
	}
}

func TestDynamicConfigReload(t *testing.T) {
	h := startServerFiles(t, nil)
	c := h.metaClient()
	for _, g := range []string{"g1", "g2", "g3"} {
		online(t, c, g, "10.0.0.1:2088"+g[1:], 0)
	}
	if got := register(t, c, "before", protocol.ClientTypeProducer, "", "p"); len(got.Groups) != 2 {
		t.Fatalf("before reload: %v", names(got))
	}
	path := filepath.Join(h.dir, FileMetaserver)
	if err := os.WriteFile(path, []byte("meta.server.discover.port=0\nmeta.server.port=0\nrefresh.period.seconds=1\nmin.group.num=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "min.group.num reload", func() bool { return h.srv.dynamic().MinGroupNum == 3 })
	if got := register(t, c, "after", protocol.ClientTypeProducer, "", "p"); len(got.Groups) != 3 {
		t.Fatalf("after reload: %v", names(got))
	}
	// Existing routes are widened to the new minimum too.
	if got := register(t, c, "before", protocol.ClientTypeProducer, "", "p"); len(got.Groups) != 3 {
		t.Fatalf("existing route after reload: %v", names(got))
	}
	// An invalid value is rejected and the old one stays.
	if err := os.WriteFile(path, []byte("meta.server.port=0\nmeta.server.discover.port=0\nmin.group.num=lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "rejected reload logged", func() bool {
		return strings.Contains(h.logs.String(), "configuration reload rejected")
	})
	if h.srv.dynamic().MinGroupNum != 3 {
		t.Fatalf("invalid reload changed min.group.num to %d", h.srv.dynamic().MinGroupNum)
	}
	// Tokens reload too (once the broken file is fixed: one bad file rejects the whole reload).
	if err := os.WriteFile(path, []byte("meta.server.discover.port=0\nmeta.server.port=0\nmin.group.num=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, FileTokens), []byte("newtoken-0123456789=ops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.srv.Reload("test")
	if out, code := h.tools("MarkReadonly", "--token=newtoken-0123456789", "--brokerGroup=g1"); code != 0 {
		t.Fatalf("new token refused: %s", out)
	}
}

// An invalid value in a file or an override is refused by the loader,
// naming where it came from.
func TestInvalidConfigRefused(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, map[string]string{FileMetaserver: "meta.server.port=0\nmeta.server.discover.port=0\nheartbeat.timeout.ms=soon\n"})
	_, _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnvTest})
	if err == nil {
		t.Fatal("loading should fail")
	}
	for _, want := range []string{filepath.Join(dir, FileMetaserver), "heartbeat.timeout.ms", `"soon"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// --set and QMQ_<KEY> are named as the origin when they are wrong.
	_, _, _, err = LoadSettings(dir, conf.Lookup{Overrides: conf.Overrides{"heartbeat.timeout.ms": "1000"},
		Env: func(k string) (string, bool) {
			if k == "QMQ_MIN_GROUP_NUM" {
				return "-1", true
			}
			return "", false
		}})
	if err == nil || !strings.Contains(err.Error(), "QMQ_MIN_GROUP_NUM") {
		t.Fatalf("env override error: %v", err)
	}
}

func TestGarbageOnPortsKeepsServerRunning(t *testing.T) {
	h := startServer(t, nil)
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x7f, 0xff, 0xff, 0xff, 0, 18}, // 2 GiB frame
		{0, 0, 0, 30, 0, 18, 0xDE, 0xC1, 0x0A, 0xDE, 0, 40, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 40, 0xff, 0xff}, // truncated acquire-meta body
	} {
		conn, err := net.Dial("tcp", h.tcpAddr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(junk)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		_, _ = conn.Read(buf)
		conn.Close()
	}
	// Bad request bodies with a valid frame get an error answer, not a dropped server.
	c := h.metaClient()
	if _, err := c.AcquireMeta(context.Background(), "", 0, 0); err == nil {
		t.Fatal("empty acquire meta should be refused")
	}
	if code, _ := h.get("/management"); code != 405 {
		t.Fatalf("GET /management: %d", code)
	}
	if out := h.mustTool("ListBrokers"); out != `{"status":0,"message":"","data":[]}` {
		t.Fatalf("server unhealthy after garbage: %s", out)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	h := startServer(t, func(_ *Settings, d *Dynamic) { d.BrokerHTTPPorts["s1/20881"] = 8081 })
	h.addBroker("g1", 0, "m1", "10.0.0.1", 20881, 20882)
	h.addBroker("g1", 1, "s1", "10.0.0.2", 20881, 20882)
	if _, body := h.get("/meta/address"); body != h.tcpAddr() {
		t.Errorf("/meta/address = %q, want %q", body, h.tcpAddr())
	}
	if _, body := h.get("/slave/meta?groupName=g1"); body != "10.0.0.2:8081" {
		t.Errorf("/slave/meta = %q", body)
	}
	if _, body := h.get("/slave/meta?groupName=none"); body != "" {
		t.Errorf("/slave/meta for unknown group = %q", body)
	}
	if _, body := h.get("/onoffline?operation=update&clientId=c1&subject=s&consumerGroup=g&state=1"); !strings.Contains(body, `"status":0`) {
		t.Errorf("/onoffline update: %s", body)
	}
	if _, body := h.get("/onoffline?operation=query&clientId=c1&subject=s&consumerGroup=g&state=0"); !strings.Contains(body, `"message":"OFFLINE"`) {
		t.Errorf("/onoffline query: %s", body)
	}
	if code, body := h.get("/health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/health: %d %s", code, body)
	}
	h.mustTool("ListBrokers")
	if _, body := h.get("/metrics"); !strings.Contains(body, `qmq_meta_management_total{action="AddBroker",status="0"} 2`) {
		t.Errorf("/metrics lacks the management counter:\n%.2000s", body)
	}
	if out, code := h.tools("NoSuchCommand"); code != 2 || out != "" {
		t.Errorf("unknown command: exit %d, stdout %q", code, out)
	}
}

// setTag sets broker_group.tag directly in the embedded database: QMQ has no tool for it either.
func setTag(t *testing.T, h *harness, group, tag string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(h.dir, "data", "metaserver.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE broker_group SET tag = ? WHERE group_name = ?", tag, group); err != nil {
		t.Fatal(err)
	}
}

func TestRealSubject(t *testing.T) {
	for in, want := range map[string]string{
		"order":                              "order",
		"%RETRY%order%cg":                    "order",
		"%DEAD_RETRY%order%cg":               "order",
		"%RETRY%%DEAD_RETRY%order%cg%reader": "order",
		"%RETRY%order":                       "order",
	} {
		if got := protocol.RealSubject(in); got != want {
			t.Errorf("protocol.RealSubject(%q) = %q, want %q", in, got, want)
		}
	}
}
