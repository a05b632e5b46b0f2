package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/admin"
)

// maxJSONAnswer bounds what is read of a /health, /consumers or Consul answer.
const maxJSONAnswer = 8 << 20

// sources fetch what the pages show, each request bounded by FetchTimeout.
type sources struct {
	settings Settings
	hc       *http.Client
	backup   *backupClient
}

func newSources(s Settings) *sources {
	hc := &http.Client{Timeout: s.FetchTimeout}
	return &sources{settings: s, hc: hc, backup: &backupClient{addrs: s.BackupHTTP, resendPath: s.BackupResendPath, hc: hc}}
}

// meta is a management client acting with token (reads need none).
func (src *sources) meta(token string) *admin.Client {
	return admin.New(src.settings.MetaHTTP, token, admin.WithHTTPClient(src.hc))
}

// getJSON GETs rawURL and decodes its JSON into out; a non-200 answer
// whose body is JSON (a degraded /health) still decodes, and says so.
func (src *sources) getJSON(ctx context.Context, rawURL string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := src.hc.Do(req)
	if err != nil {
		return fmt.Errorf("not reachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONAnswer))
	if err != nil {
		return fmt.Errorf("reading %s: %w", rawURL, err)
	}
	if jerr := json.Unmarshal(body, out); jerr != nil {
		return fmt.Errorf("%s answered HTTP %d, not JSON: %s", rawURL, resp.StatusCode, clip(strings.TrimSpace(string(body)), 200))
	}
	return nil
}

// serverView is a row of the broker table with what its /health says.
type serverView struct {
	admin.Broker
	HTTP   string
	Health map[string]any
	Err    string
}

// field returns a /health field as text, "" when absent.
func (v serverView) Field(name string) string {
	x, ok := v.Health[name]
	if !ok || x == nil {
		return ""
	}
	switch t := x.(type) {
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// Replication summarises the replication fields of a broker's or delay
// server's /health (their shapes differ) in one line.
func (v serverView) Replication() string {
	var parts []string
	add := func(format string, name string) {
		if x := v.Field(name); x != "" {
			parts = append(parts, fmt.Sprintf(format, x))
		}
	}
	add("slave %s", "slave")
	add("lag %s B", "slaveLagBytes")
	add("%s ms behind", "slaveLagMillis")
	add("master %s", "master")
	add("behind %s B", "behindBytes")
	if sl, ok := v.Health["slave"].(map[string]any); ok { // the delay server's shape
		parts = parts[:0]
		if a, _ := sl["address"].(string); a != "" {
			parts = append(parts, "slave "+a)
		} else {
			parts = append(parts, "no slave connected")
		}
		if lag, ok := sl["lagBytes"].(float64); ok && lag >= 0 {
			parts = append(parts, fmt.Sprintf("lag %.0f B", lag))
		}
	}
	if m, ok := v.Health["master"].(map[string]any); ok {
		parts = parts[:0]
		parts = append(parts, fmt.Sprintf("master %v connected=%v", m["address"], m["connected"]))
		if b, ok := m["behindBytes"].(float64); ok && b >= 0 {
			parts = append(parts, fmt.Sprintf("behind %.0f B", b))
		}
	}
	return strings.Join(parts, ", ")
}

// IsDelay says whether the row is a delay server's.
func (v serverView) IsDelay() bool { return strings.HasPrefix(v.Role, "DELAY") }

// clusterView is what the cluster page shows.
type clusterView struct {
	Groups      []groupView
	Servers     []serverView
	Consul      []consulCheck
	ConsulErr   string
	PortsErr    string // Consul did not say where the HTTP ports are
	MetaHealth  map[string]any
	MetaErr     string
	GeneratedAt time.Time
}

type groupView struct {
	admin.BrokerGroup
	HeartbeatAge time.Duration
}

type consulCheck struct {
	Node        string `json:"Node"`
	Name        string `json:"Name"`
	Status      string `json:"Status"`
	ServiceName string `json:"ServiceName"`
	Output      string `json:"Output"`
}

// cluster reads the broker table and groups from the metaserver and every
// server's /health, in parallel.
func (src *sources) cluster(ctx context.Context) clusterView {
	v := clusterView{GeneratedAt: time.Now()}
	m := src.meta("")
	groups, err := m.ListBrokerGroups(ctx)
	if err != nil {
		v.MetaErr = err.Error()
	}
	for _, g := range groups {
		v.Groups = append(v.Groups, groupView{BrokerGroup: g, HeartbeatAge: time.Since(time.UnixMilli(g.UpdateTime)).Truncate(time.Second)})
	}
	brokers, err := m.ListBrokers(ctx, "")
	if err != nil && v.MetaErr == "" {
		v.MetaErr = err.Error()
	}
	_ = src.getJSON(ctx, src.metaURL("/health"), &v.MetaHealth)
	ports := src.httpPorts(ctx)
	v.PortsErr = ports.err
	v.Servers = make([]serverView, len(brokers))
	var wg sync.WaitGroup
	for i, b := range brokers {
		v.Servers[i] = serverView{Broker: b, HTTP: src.serverHTTP(b, ports)}
		if v.Servers[i].HTTP == "" {
			v.Servers[i].Err = "HTTP port unknown (console.broker.http.ports, or an http_port meta in its Consul registration)"
			continue
		}
		wg.Add(1)
		go func(sv *serverView) {
			defer wg.Done()
			if err := src.getJSON(ctx, "http://"+sv.HTTP+"/health", &sv.Health); err != nil {
				sv.Err = err.Error()
			}
		}(&v.Servers[i])
	}
	if src.settings.Consul != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := src.getJSON(ctx, "http://"+src.settings.Consul+"/v1/health/state/any", &v.Consul); err != nil {
				v.ConsulErr = fmt.Sprintf("Consul at %s: %v", src.settings.Consul, err)
			}
		}()
	}
	wg.Wait()
	sort.Slice(v.Servers, func(i, j int) bool {
		if v.Servers[i].Group != v.Servers[j].Group {
			return v.Servers[i].Group < v.Servers[j].Group
		}
		return v.Servers[i].Role < v.Servers[j].Role
	})
	return v
}

// brokerProgress is a broker's /consumers answer.
type brokerProgress struct {
	Subjects []struct {
		Subject     string `json:"subject"`
		MinSequence int64  `json:"minSequence"`
		MaxSequence int64  `json:"maxSequence"`
		Groups      []struct {
			Group             string `json:"group"`
			Broadcast         bool   `json:"broadcast"`
			MaxPulledSequence int64  `json:"maxPulledSequence"`
			Backlog           int64  `json:"backlog"`
			Consumers         []struct {
				ConsumerID string `json:"consumerId"`
				PullSeq    int64  `json:"pullSeq"`
				AckSeq     int64  `json:"ackSeq"`
				Unacked    int64  `json:"unacked"`
				LastActive int64  `json:"lastActiveMillis"`
			} `json:"consumers"`
		} `json:"groups"`
	} `json:"subjects"`
}

// progress reads /consumers of every master broker (not delay servers):
// broker group → its progress; errs names the groups that did not answer.
func (src *sources) progress(ctx context.Context) (map[string]brokerProgress, []string) {
	brokers, err := src.meta("").ListBrokers(ctx, "")
	if err != nil {
		return nil, []string{err.Error()}
	}
	out := map[string]brokerProgress{}
	var errs []string
	ports := src.httpPorts(ctx)
	if ports.err != "" {
		errs = append(errs, ports.err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range brokers {
		if b.Role != "MASTER" {
			continue
		}
		addr := src.serverHTTP(b, ports)
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p brokerProgress
			err := src.getJSON(ctx, "http://"+addr+"/consumers", &p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("broker group %s (%s): %v", b.Group, addr, err))
				return
			}
			out[b.Group] = p
		}()
	}
	wg.Wait()
	sort.Strings(errs)
	return out, errs
}

// subjectConsumer is a consumer group of /subject/consumers.
type subjectConsumer struct {
	ConsumerGroup string   `json:"consumerGroup"`
	EndPoint      []string `json:"endPoint"`
}

// metaURL is the metaserver's URL for path.
func (src *sources) metaURL(path string) string {
	return strings.TrimSuffix(admin.ManagementURL(src.settings.MetaHTTP), "/management") + path
}

// subjectConsumers lists the consumer groups the metaserver knows for subject.
func (src *sources) subjectConsumers(ctx context.Context, subject string) ([]subjectConsumer, error) {
	var ans struct {
		Status  int               `json:"status"`
		Message string            `json:"message"`
		Data    []subjectConsumer `json:"data"`
	}
	if err := src.getJSON(ctx, src.metaURL("/subject/consumers?subject="+url.QueryEscape(subject)), &ans); err != nil {
		return nil, fmt.Errorf("metaserver at %s: %w", src.settings.MetaHTTP, err)
	}
	if ans.Status != 0 {
		return nil, fmt.Errorf("metaserver: %s", ans.Message)
	}
	return ans.Data, nil
}

// onOffline queries (state "") or sets (state "0" online, "1" offline) a
// consumer's forced state at the metaserver and returns its answer.
func (src *sources) onOffline(ctx context.Context, clientID, subject, group, state string) (string, error) {
	op := "update"
	if state == "" {
		op, state = "query", "0"
	}
	q := url.Values{"operation": {op}, "clientId": {clientID}, "subject": {subject}, "consumerGroup": {group}, "state": {state}}
	var ans struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if err := src.getJSON(ctx, src.metaURL("/onoffline?"+q.Encode()), &ans); err != nil {
		return "", fmt.Errorf("metaserver at %s: %w", src.settings.MetaHTTP, err)
	}
	if ans.Status != 0 {
		return "", fmt.Errorf("metaserver refused: %s", ans.Message)
	}
	return ans.Message, nil
}

// watchdogs reads every configured watchdog's /health.
func (src *sources) watchdogs(ctx context.Context) []watchdogView {
	out := make([]watchdogView, len(src.settings.WatchdogHTTP))
	var wg sync.WaitGroup
	for i, a := range src.settings.WatchdogHTTP {
		out[i].Addr = a
		wg.Add(1)
		go func(w *watchdogView) {
			defer wg.Done()
			if err := src.getJSON(ctx, "http://"+w.Addr+"/health", &w.Health); err != nil {
				w.Err = err.Error()
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}

type watchdogView struct {
	Addr   string
	Err    string
	Health struct {
		Status    string `json:"status"`
		Role      string `json:"role"`
		Node      string `json:"node"`
		Namespace string `json:"namespace"`
		Leader    string `json:"leader"`
		Election  string `json:"election"`
		ElectErr  string `json:"electionError"`
		MetaErr   string `json:"metaserverError"`
		Databases []struct {
			URL           string `json:"url"`
			User          string `json:"user"`
			State         string `json:"state"`
			Error         string `json:"error"`
			Pending       int64  `json:"pending"`
			Resent        int64  `json:"resent"`
			Failed        int64  `json:"failed"`
			Invalid       int64  `json:"invalid"`
			Blocked       int64  `json:"blocked"`
			LastScan      string `json:"lastScan"`
			LastSendError string `json:"lastSendError"`
		} `json:"databases"`
	}
}
