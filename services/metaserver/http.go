package metaserver

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	namerule "github.com/qmq-go/qmq/protocol/names" // metaserver_test.go has a names()
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/meta/address", s.handleMetaAddress)
	mux.HandleFunc("/management", s.handleManagement)
	mux.HandleFunc("/slave/meta", s.handleSlaveMeta)
	mux.HandleFunc("/subject/consumers", s.handleSubjectConsumers)
	mux.HandleFunc("/onoffline", s.handleOnOffline)
	mux.HandleFunc("/health", s.handleHealth)
	mux.Handle("/metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("no such endpoint %s; the metaserver serves /meta/address, /management, /slave/meta, /subject/consumers, /onoffline, /health, /metrics", r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// writeJSON writes v the way Jackson would: no HTML escaping, one line.
func writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(s))
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// advertisedIP is the IP clients should use to reach this metaserver: the
// configured meta.server.advertise.ip, else the local address the caller
// reached us on (so it is routable from the caller's side).
func (s *Server) advertisedIP(local net.Addr) string {
	if s.settings.AdvertiseIP != "" {
		return s.settings.AdvertiseIP
	}
	if a, ok := local.(*net.TCPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		if v4 := a.IP.To4(); v4 != nil {
			return v4.String()
		}
		return a.IP.String()
	}
	return "127.0.0.1"
}

// handleMetaAddress answers QMQ's discovery request with "ip:meta.server.port".
func (s *Server) handleMetaAddress(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	writeText(w, net.JoinHostPort(s.advertisedIP(local), strconv.Itoa(s.TCPAddr().(*net.TCPAddr).Port)))
}

// httpAddrFor is this metaserver's HTTP address as seen by the TCP peer of req.
func (s *Server) httpAddrFor(req *remoting.Request) string {
	return net.JoinHostPort(s.advertisedIP(req.LocalAddr), strconv.Itoa(s.HTTPAddr().(*net.TCPAddr).Port))
}

// handleSlaveMeta returns "<slave ip>:<slave http port>" of a group (used by backup), or "".
func (s *Server) handleSlaveMeta(w http.ResponseWriter, r *http.Request) {
	group := r.URL.Query().Get("groupName")
	for _, b := range s.cache.get().brokers {
		if b.Group == group && (b.Role == store.RoleSlave || b.Role == store.RoleDelaySlave) {
			writeText(w, net.JoinHostPort(b.IP, strconv.Itoa(s.dynamic().BrokerHTTPPort(b))))
			return
		}
	}
	writeText(w, "")
}

type groupedConsumer struct {
	Namespace     string   `json:"namespace"`
	Prefix        string   `json:"prefix"`
	ConsumerGroup string   `json:"consumerGroup"`
	Owner         string   `json:"owner"`
	EndPoint      []string `json:"endPoint"`
}

func (s *Server) handleSubjectConsumers(w http.ResponseWriter, r *http.Request) {
	subject := r.URL.Query().Get("subject")
	if subject == "" {
		writeJSON(w, actionResult{Status: -1, Message: "subject parameter is required: /subject/consumers?subject=<subject>"})
		return
	}
	metas, err := s.store.ListClientMeta(r.Context(), subject)
	if err != nil {
		writeJSON(w, actionResult{Status: -1, Message: fmt.Sprintf("cannot read subscriptions of %q: %v", subject, err)})
		return
	}
	byGroup := map[string]*groupedConsumer{}
	var order []string
	for _, m := range metas {
		if m.ClientType != 2 { // consumers only
			continue
		}
		g := byGroup[m.ConsumerGroup]
		if g == nil {
			g = &groupedConsumer{Namespace: "newqmq", Prefix: subject, ConsumerGroup: m.ConsumerGroup}
			byGroup[m.ConsumerGroup] = g
			order = append(order, m.ConsumerGroup)
		}
		g.EndPoint = append(g.EndPoint, fmt.Sprintf("qmq://%s?room=%s&appCode=%s", m.ClientID, m.Room, m.AppCode))
	}
	sort.Strings(order)
	data := []*groupedConsumer{}
	for _, name := range order {
		data = append(data, byGroup[name])
	}
	writeJSON(w, actionResult{Status: 0, Message: "成功", Data: data})
}

// handleOnOffline forces a consumer online (state=0) or offline (state=1), or queries it.
func (s *Server) handleOnOffline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	op, clientID, subject, group := q.Get("operation"), q.Get("clientId"), q.Get("subject"), q.Get("consumerGroup")
	state, err := strconv.Atoi(q.Get("state"))
	if op == "" || clientID == "" || subject == "" || group == "" || err != nil || (state != 0 && state != 1) {
		writeJSON(w, actionResult{Status: -1, Message: "invalid parameter: need operation=update|query, clientId, subject, consumerGroup and state=0 (online) or 1 (offline)"})
		return
	}
	key := offlineKey{clientID, subject, group}
	switch op {
	case "update":
		if bad := cmp.Or(badName("subject", subject, namerule.WireSubject, false), badName("consumerGroup", group, namerule.Group, false)); bad != "" {
			writeJSON(w, actionResult{Status: -1, Message: bad})
			return
		}
		if err := s.store.UpsertOfflineState(r.Context(), store.OfflineState{ClientID: clientID, Subject: subject, ConsumerGroup: group, State: state}); err != nil {
			writeJSON(w, actionResult{Status: -1, Message: fmt.Sprintf("cannot save state: %v", err)})
			return
		}
		s.cache.update(func(sn *snapshot) { sn.offline[key] = state })
		writeJSON(w, actionResult{Status: 0, Message: "ok"})
	case "query":
		name := "ONLINE"
		if s.cache.get().offline[key] == 1 {
			name = "OFFLINE"
		}
		writeJSON(w, actionResult{Status: 0, Message: name})
	default:
		writeJSON(w, actionResult{Status: -1, Message: "unsupport: " + op + " (use update or query)"})
	}
}

// handleHealth is the Consul check. It stays 200 while the database is down,
// because the metaserver still serves existing routes then; the body says so.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	healthy, lastOK, lastErr := s.cache.status()
	body := map[string]any{"status": "ok", "database": "ok", "lastRefresh": lastOK.UnixMilli()}
	if !healthy {
		body["status"] = "degraded"
		body["database"] = fmt.Sprint(lastErr)
	}
	writeJSON(w, body)
}
