package metaserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAddBrokerIfAbsent: AddBroker --ifAbsent (ours) lets a start script
// register its broker before every start. A broker already in its group
// answers status 0 with its row, whatever its role after a failover; a
// different address for it, a second broker for a taken role and a
// hostname:servePort of another group are still refused; without the flag
// AddBroker keeps QMQ's refusal of a second registration.
func TestAddBrokerIfAbsent(t *testing.T) {
	h := startServer(t, nil)
	tok := "--token=" + testToken
	add := func(role, host, ip, serve, sync string, extra ...string) (brokerMetaAnswer, string, int) {
		t.Helper()
		args := append([]string{"AddBroker", tok, "--brokerGroup=g1", "--role=" + role, "--hostname=" + host, "--ip=" + ip,
			"--servePort=" + serve, "--syncPort=" + sync}, extra...)
		out, code := h.tools(args...)
		var a brokerMetaAnswer
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("AddBroker %v: answer is not JSON: %v: %s", args, err, out)
		}
		return a, out, code
	}

	// First registration with the flag: an ordinary insert, QMQ's answer.
	a, out, code := add("0", "host-a", "10.0.0.1", "20881", "20882", "--ifAbsent")
	if code != 0 || a.Status != 0 || a.Message != "" || a.Data.Role != "MASTER" || a.Data.Hostname != "host-a" {
		t.Fatalf("first AddBroker --ifAbsent: exit %d: %s", code, out)
	}
	if _, out, code := add("1", "host-b", "10.0.0.2", "20881", "20882", "--ifAbsent"); code != 0 {
		t.Fatalf("slave AddBroker --ifAbsent: exit %d: %s", code, out)
	}

	// Again: nothing changes, the registered row is printed.
	a, out, code = add("0", "host-a", "10.0.0.1", "20881", "20882", "--ifAbsent")
	if code != 0 || a.Status != 0 || !strings.HasPrefix(a.Message, "already registered: host-a:20881 is the MASTER of group g1") ||
		a.Data != (brokerMeta{Group: "g1", Role: "MASTER", Hostname: "host-a", IP: "10.0.0.1", ServePort: 20881, SyncPort: 20882}) {
		t.Fatalf("repeated AddBroker --ifAbsent: exit %d: %s", code, out)
	}
	// Without the flag, QMQ's refusal stays.
	if _, out, code := add("0", "host-a", "10.0.0.1", "20881", "20882"); code == 0 || !strings.Contains(out, `"status":-1`) {
		t.Fatalf("repeated AddBroker without --ifAbsent: exit %d: %s", code, out)
	}

	// After a failover host-a is the slave; its start script still says role 0.
	h.mustTool("SwapMasterSlave", tok, "--brokerGroup=g1")
	a, out, code = add("0", "host-a", "10.0.0.1", "20881", "20882", "--ifAbsent")
	if code != 0 || a.Data.Role != "SLAVE" || !strings.Contains(a.Message, "is the SLAVE of group g1 (this request said MASTER") {
		t.Fatalf("AddBroker --ifAbsent after the swap: exit %d: %s", code, out)
	}
	a, out, code = add("1", "host-b", "10.0.0.2", "20881", "20882", "--ifAbsent")
	if code != 0 || a.Data.Role != "MASTER" {
		t.Fatalf("AddBroker --ifAbsent of the new master: exit %d: %s", code, out)
	}
	brokers := h.mustTool("ListBrokers", "--brokerGroup=g1")
	if strings.Count(brokers, `"hostname"`) != 2 || !strings.Contains(brokers, `"role":"SLAVE","hostname":"host-a"`) {
		t.Fatalf("ListBrokers after the idempotent registrations: %s", brokers)
	}

	// Real conflicts are still refused.
	for _, c := range []struct {
		name                  string
		role, host, ip, serve string
		sync, want            string
	}{
		{"member at another ip", "0", "host-a", "10.0.0.9", "20881", "20882", "is already the SLAVE of group g1 with ip 10.0.0.1 and syncPort 20882, not ip 10.0.0.9"},
		{"member with another syncPort", "1", "host-a", "10.0.0.1", "20881", "20892", "ReplaceBroker with --role=1"},
		{"another broker for a taken role", "0", "host-c", "10.0.0.3", "20881", "20882", "ReplaceBroker"},
		{"a delay role asked of a real-time member", "5", "host-a", "10.0.0.1", "20881", "20882", "real-time and delay groups must have different names"},
	} {
		if _, out, code := add(c.role, c.host, c.ip, c.serve, c.sync, "--ifAbsent"); code == 0 || !strings.Contains(out, `"status":-1`) || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output %s; want status -1 mentioning %q", c.name, code, out, c.want)
		}
	}
	// hostname:servePort belongs to another group.
	out, code = h.tools("AddBroker", tok, "--brokerGroup=g2", "--role=0", "--hostname=host-a", "--ip=10.0.0.1", "--servePort=20881", "--syncPort=20882", "--ifAbsent")
	if code == 0 || !strings.Contains(out, "each broker process on a host needs its own servePort") {
		t.Errorf("hostname:servePort of another group: exit %d: %s", code, out)
	}
	// A bad value of the form parameter (only qmq tools sends it, as true).
	body := postManagement(t, h, "action=AddBroker&brokerGroup=g3&role=0&hostname=h3&ip=10.0.0.3&servePort=1&syncPort=2&ifAbsent=maybe")
	if !strings.Contains(body, `parameter ifAbsent=\"maybe\" is not true or false`) {
		t.Errorf("ifAbsent=maybe: %s", body)
	}
}

// postManagement posts a raw form to /management with the test token.
func postManagement(t *testing.T, h *harness, form string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+h.httpAddr()+"/management", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Token", testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type brokerMetaAnswer struct {
	Status  int        `json:"status"`
	Message string     `json:"message"`
	Data    brokerMeta `json:"data"`
}

// TestListBrokerGroupsAfterSwap: right after SwapMasterSlave the group's
// stored master address is still the old master's (it changes when the new
// master registers ONLINE); ListBrokerGroups shows the new roles at once,
// never one broker as both master and slave.
func TestListBrokerGroupsAfterSwap(t *testing.T) {
	h := startServer(t, nil)
	h.addBroker("g1", 0, "host-a", "10.0.0.1", 20881, 20882)
	h.addBroker("g1", 1, "host-b", "10.0.0.2", 20881, 20882)
	c := h.metaClient()
	online(t, c, "g1", "10.0.0.1:20881", 0)
	type group struct {
		Master      string   `json:"master"`
		Slaves      []string `json:"slaves"`
		BrokerState string   `json:"brokerState"`
	}
	list := func() group {
		t.Helper()
		out := h.mustTool("ListBrokerGroups")
		var gs []group
		if err := json.Unmarshal([]byte(out), &gs); err != nil || len(gs) != 1 {
			t.Fatalf("ListBrokerGroups: %v: %s", err, out)
		}
		return gs[0]
	}
	want := func(when string, g group, master, slave, state string) {
		t.Helper()
		if g.Master != master || len(g.Slaves) != 1 || g.Slaves[0] != slave || g.BrokerState != state {
			t.Errorf("%s: ListBrokerGroups = %+v; want master %s, slaves [%s], state %s", when, g, master, slave, state)
		}
	}
	want("before the swap", list(), "10.0.0.1:20881", "10.0.0.2:20881", "RW")
	h.mustTool("SwapMasterSlave", "--token="+testToken, "--brokerGroup=g1")
	want("after the swap", list(), "10.0.0.2:20881", "10.0.0.1:20881", "NRW")
	online(t, c, "g1", "10.0.0.2:20881", 0)
	want("once the new master is online", list(), "10.0.0.2:20881", "10.0.0.1:20881", "RW")
}
