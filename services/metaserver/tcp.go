package metaserver

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qmq-go/qmq/protocol"
	namerule "github.com/qmq-go/qmq/protocol/names" // metaserver_test.go has a names()
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// registerTCPHandlers wires the metaserver's request codes.
func (s *Server) registerTCPHandlers(srv *remoting.Server) {
	srv.Handle(protocol.CodeBrokerAcquireMeta, remoting.HandlerFunc(s.handleAcquireMeta))
	srv.Handle(protocol.CodeBrokerRegister, remoting.HandlerFunc(s.handleBrokerRegister))
	srv.Handle(protocol.CodeClientRegister, remoting.HandlerFunc(s.handleClientRegister))
	srv.Handle(protocol.CodeQuerySubjectRoute, remoting.HandlerFunc(s.handleSubjectRouteQuery)) // ours, see routequery.go
	srv.Handle(protocol.CodeBrokerLease, remoting.HandlerFunc(s.handleLease))                   // ours, see failover.go
}

func errorResponse(req *remoting.Request, code int16, format string, args ...any) protocol.Frame {
	return protocol.NewResponse(req.Frame.Header, code, protocol.AppendErrorBody(nil, fmt.Sprintf(format, args...)))
}

// handleAcquireMeta tells a starting broker which group and role it has.
// An unknown (hostname, port) — the most common install error — is answered
// with a message naming what the broker sent, the registered brokers that
// look like it, and the exact command that would register it.
func (s *Server) handleAcquireMeta(ctx context.Context, req *remoting.Request) protocol.Frame {
	r, err := protocol.DecodeBrokerAcquireMetaRequest(req.Frame.Body)
	if err != nil {
		return errorResponse(req, protocol.CodeParamError, "malformed BROKER_ACQUIRE_META body: %v", err)
	}
	s.log.Info("broker request BROKER_ACQUIRE_META", "hostname", r.Hostname, "port", r.Port, "remote", req.RemoteAddr)
	brokers := s.cache.get().brokers
	b, found := findBroker(brokers, r.Hostname, int(r.Port))
	if !found {
		// AddBroker may have run on another metaserver a moment ago: ask the database.
		if fresh, err := s.store.ListBrokers(ctx); err == nil {
			brokers = fresh
			b, found = findBroker(brokers, r.Hostname, int(r.Port))
		}
	}
	if !found {
		s.m.acquireMeta.WithLabelValues("unknown_broker").Inc()
		msg := s.unknownBrokerMessage(r, brokers, req)
		s.log.Warn("broker is not registered", "hostname", r.Hostname, "port", r.Port, "remote", req.RemoteAddr)
		return protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerError, protocol.AppendErrorBody(nil, msg))
	}
	resp := protocol.BrokerAcquireMetaResponse{GroupName: b.Group, Role: int32(b.Role)}
	switch b.Role {
	case store.RoleSlave, store.RoleDelaySlave:
		m, ok := findRole(brokers, b.Group, masterOf(b.Role))
		if !ok {
			s.m.acquireMeta.WithLabelValues("no_master").Inc()
			return errorResponse(req, protocol.CodeBrokerError,
				"broker %s:%d is registered as %s of group %s, but the group has no %s row; register it first: qmq tools AddBroker --metaserver=%s --token=<token> --brokerGroup=%s --role=%d --hostname=<master hostname> --ip=<master ip> --servePort=<port> --syncPort=<port>",
				r.Hostname, r.Port, roleName(b.Role), b.Group, roleName(masterOf(b.Role)), s.httpAddrFor(req), b.Group, masterOf(b.Role))
		}
		resp.MasterAddress = net.JoinHostPort(m.IP, strconv.Itoa(m.SyncPort))
	case store.RoleBackup, store.RoleDelayBackup:
		sl, ok := findRole(brokers, b.Group, slaveOf(b.Role))
		if !ok && b.Role == store.RoleBackup {
			// Ours: a group without a slave (qmq dev) is backed up from its
			// master, whose sync port serves readers too.
			sl, ok = findRole(brokers, b.Group, store.RoleMaster)
		}
		if !ok {
			s.m.acquireMeta.WithLabelValues("no_slave").Inc()
			return errorResponse(req, protocol.CodeBrokerError,
				"backup %s:%d of group %s follows the group's slave, but the group has no %s row; register the slave first with qmq tools AddBroker --role=%d",
				r.Hostname, r.Port, b.Group, roleName(slaveOf(b.Role)), slaveOf(b.Role))
		}
		resp.MasterAddress = net.JoinHostPort(sl.IP, strconv.Itoa(sl.SyncPort))
	case store.RoleMaster, store.RoleDelayMaster:
		// Ours: where the group's slave is registered, so that the master
		// serves replication to that slave only ("" while it has none).
		resp.SlaveKnown = true
		if sl, ok := findRole(brokers, b.Group, slaveOfMaster(b.Role)); ok {
			resp.SlaveAddress = net.JoinHostPort(sl.IP, strconv.Itoa(sl.SyncPort))
		}
	}
	s.m.acquireMeta.WithLabelValues("ok").Inc()
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendBrokerAcquireMetaResponse(nil, &resp))
}

func masterOf(role int) int {
	if role == store.RoleDelaySlave {
		return store.RoleDelayMaster
	}
	return store.RoleMaster
}

func slaveOf(role int) int {
	if role == store.RoleDelayBackup {
		return store.RoleDelaySlave
	}
	return store.RoleSlave
}

func slaveOfMaster(role int) int {
	if role == store.RoleDelayMaster {
		return store.RoleDelaySlave
	}
	return store.RoleSlave
}

func findBroker(bs []store.Broker, hostname string, port int) (store.Broker, bool) {
	for _, b := range bs {
		if b.Hostname == hostname && b.ServePort == port {
			return b, true
		}
	}
	return store.Broker{}, false
}

func findRole(bs []store.Broker, group string, role int) (store.Broker, bool) {
	for _, b := range bs {
		if b.Group == group && b.Role == role {
			return b, true
		}
	}
	return store.Broker{}, false
}

// unknownBrokerMessage builds the one-paragraph answer for an unregistered broker.
func (s *Server) unknownBrokerMessage(r protocol.BrokerAcquireMetaRequest, brokers []store.Broker, req *remoting.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot find broker meta for %s:%d: no broker is registered with hostname %q and servePort %d (the hostname this broker resolved for itself and its broker.port).",
		r.Hostname, r.Port, r.Hostname, r.Port)
	if similar := similarBrokers(brokers, r.Hostname, int(r.Port)); len(similar) > 0 {
		b.WriteString(" Registered brokers with similar names: " + strings.Join(similar, "; ") + ".")
		b.WriteString(" If one of them is this machine, make the hostname match (check `hostname` and /etc/hosts) or fix the row with qmq tools ReplaceBroker.")
	} else if len(brokers) == 0 {
		b.WriteString(" No broker is registered at all.")
	}
	ip := "<this broker's ip>"
	if a, ok := req.RemoteAddr.(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		ip = a.IP.String()
	}
	syncPort := int(r.SyncPort)
	if syncPort == 0 {
		syncPort = int(r.Port) + 1
	}
	fmt.Fprintf(&b, " To register it as a master run: qmq tools AddBroker --metaserver=%s --token=<token from valid-api-tokens.properties> --brokerGroup=<group name> --role=0 --hostname=%s --ip=%s --servePort=%d --syncPort=%d (use --role=1 for a slave, 5/6 for a delay master/slave).",
		s.httpAddrFor(req), r.Hostname, ip, r.Port, syncPort)
	return b.String()
}

// similarBrokers lists registered brokers whose hostname is close to host (edit distance,
// shared prefix or case) or that use the same port, best first.
func similarBrokers(brokers []store.Broker, host string, port int) []string {
	type cand struct {
		score int
		desc  string
	}
	var cs []cand
	lh := strings.ToLower(host)
	for _, b := range brokers {
		lb := strings.ToLower(b.Hostname)
		d := editDistance(lh, lb)
		close := d <= max(2, len(lh)/4) || strings.HasPrefix(lb, lh) || strings.HasPrefix(lh, lb)
		if !close && !(lb == lh && b.ServePort != port) {
			continue
		}
		cs = append(cs, cand{d*10 + abs(b.ServePort-port)%10, fmt.Sprintf("%s:%d (group %s, %s, ip %s)", b.Hostname, b.ServePort, b.Group, roleName(b.Role), b.IP)})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].score < cs[j].score })
	var out []string
	for i, c := range cs {
		if i == 5 {
			break
		}
		out = append(out, c.desc)
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// handleBrokerRegister records a master's ONLINE, HEARTBEAT and OFFLINE.
// Slaves and backups are acknowledged and otherwise ignored, as in QMQ.
func (s *Server) handleBrokerRegister(ctx context.Context, req *remoting.Request) protocol.Frame {
	r, err := protocol.DecodeBrokerRegisterRequest(req.Frame.Body)
	if err != nil {
		return errorResponse(req, protocol.CodeParamError, "malformed BROKER_REGISTER body: %v", err)
	}
	typ := map[int32]string{protocol.BrokerRequestOnline: "online", protocol.BrokerRequestHeartbeat: "heartbeat", protocol.BrokerRequestOffline: "offline"}[r.RequestType]
	if typ == "" {
		return errorResponse(req, protocol.CodeParamError, "BROKER_REGISTER from %s: unknown requestType %d (want 0 online, 1 heartbeat, 2 offline)", r.BrokerAddress, r.RequestType)
	}
	s.m.brokerRegister.WithLabelValues(typ).Inc()
	if !isMasterRole(int(r.Role)) {
		return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, nil)
	}
	if r.GroupName == "" {
		return errorResponse(req, protocol.CodeParamError, "BROKER_REGISTER from %s has an empty groupName", r.BrokerAddress)
	}
	if why := s.staleMaster(ctx, r); why != "" {
		s.log.Warn("registration of a former master refused", "group", r.GroupName, "address", r.BrokerAddress, "reason", why)
		return errorResponse(req, protocol.CodeBrokerReject, "%s", why)
	}
	if err := s.heartbeats.record(ctx, r); err != nil {
		return errorResponse(req, protocol.CodeBrokerError, "%v", err)
	}
	// Ours: tell the master what MarkReadonlyBrokerGroup has made read-only
	// in its group, which it cannot see otherwise (its /health reports it).
	answer := protocol.BrokerRegisterResponse{Known: true, ReadonlySubjects: readonlySubjects(s.cache.get(), r.GroupName)}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendBrokerRegisterResponse(nil, &answer))
}

// readonlySubjects lists, sorted, the subjects ("*" for all) marked read-only in group.
func readonlySubjects(snap *snapshot, group string) []string {
	out := []string{}
	for subject, groups := range snap.readonly {
		if groups[group] {
			out = append(out, subject)
		}
	}
	sort.Strings(out)
	return out
}

// handleClientRegister answers a producer's or consumer's request for the
// broker groups of a subject.
func (s *Server) handleClientRegister(ctx context.Context, req *remoting.Request) protocol.Frame {
	r, err := protocol.DecodeClientRegisterRequest(req.Frame.Body)
	if err != nil {
		return errorResponse(req, protocol.CodeParamError, "malformed CLIENT_REGISTER body: %v", err)
	}
	if err := registrationNames(&r); err != nil {
		return errorResponse(req, protocol.CodeParamError, "CLIENT_REGISTER from %s (clientId %q): %v", req.RemoteAddr, r.ClientID, err)
	}
	s.m.clientRegister.WithLabelValues(strconv.Itoa(int(r.ClientTypeCode))).Inc()
	dyn := s.dynamic()
	if dyn.VerboseFor(r.Subject) {
		s.log.Info("client register", "subject", r.Subject, "type", r.ClientTypeCode, "group", r.ConsumerGroup, "client_id", r.ClientID, "app", r.AppCode, "request_type", r.RequestType, "remote", req.RemoteAddr)
	}
	if r.RequestType == protocol.ClientRequestOnline {
		cm := store.ClientMeta{Subject: r.Subject, ClientType: int(r.ClientTypeCode), ConsumerGroup: r.ConsumerGroup, ClientID: r.ClientID, AppCode: r.AppCode, Room: r.ClientLDC}
		if err := s.store.InsertClientMeta(ctx, cm); err != nil {
			// The subscription registry only feeds /subject/consumers; routing must not depend on it.
			s.log.Warn("cannot record client subscription; routing it anyway", "subject", r.Subject, "client_id", r.ClientID, "error", err)
		}
	}
	groups, withheld, err := s.route(ctx, &r)
	if err != nil {
		s.log.Warn("cannot route client", "subject", r.Subject, "client_id", r.ClientID, "error", err)
		return errorResponse(req, protocol.CodeBrokerError, "%v", err)
	}
	resp := protocol.ClientRegisterResponse{
		Timestamp:      time.Now().UnixMilli(),
		Subject:        r.Subject,
		ConsumerGroup:  r.ConsumerGroup,
		OnOfflineState: uint8(s.cache.get().offline[offlineKey{r.ClientID, r.Subject, r.ConsumerGroup}]),
		ClientTypeCode: uint8(r.ClientTypeCode),
		Withheld:       withheld,
	}
	for _, g := range groups {
		resp.Groups = append(resp.Groups, protocol.BrokerGroupInfo{Name: g.Name, MasterAddress: g.MasterAddress, UpdateTime: g.UpdateTime.UnixMilli(), State: uint8(g.State)})
	}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendClientRegisterResponse(nil, &resp))
}

// registrationNames checks a CLIENT_REGISTER's subject and consumer group
// with the one rule for names (package protocol/names). Retry and
// dead-letter subjects built from legal names are legal: consumers pull
// them and send failed messages to them. Producers register without a
// group; a broadcast consumer's group is its client id (QMQ), possibly
// renamed for a sub-environment (<clientId>_<env>_<subEnv>), which is not a
// group name and is taken as it is.
func registrationNames(r *protocol.ClientRegisterRequest) error {
	if err := namerule.WireSubject(r.Subject); err != nil {
		return err
	}
	g := r.ConsumerGroup
	if g == "" {
		return nil
	}
	if r.ClientID != "" && (g == r.ClientID || strings.HasPrefix(g, r.ClientID+"_")) {
		for i, c := range g {
			if c < 0x20 || c == 0x7f || c == utf8.RuneError {
				return fmt.Errorf("broadcast consumer group (client id) %q has a control character or a byte that is not UTF-8 at byte %d", g, i)
			}
		}
		return nil
	}
	return namerule.Group(g)
}
