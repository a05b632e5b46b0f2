package metaserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/protocol"
	namerule "github.com/qmq-go/qmq/protocol/names" // metaserver_test.go has a names()
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// badTokenMessage keeps QMQ's text (scripts grep for it) and says what to do.
const badTokenMessage = "没有提供合法的 Api Token (missing or invalid X-Api-Token: pass --token=<a key of the metaserver's valid-api-tokens.properties>)"

type action struct {
	needsToken bool
	run        func(ctx context.Context, p params) any
}

// params reads form values with QMQ's parameter names.
type params struct{ r *http.Request }

func (p params) str(name string) string { return strings.TrimSpace(p.r.FormValue(name)) }

// name reads a subject or consumer group parameter as sent: a name with
// a space is refused by badName, not quietly changed into another name.
func (p params) name(key string) string { return p.r.FormValue(key) }

// badName applies the one rule for names (package protocol/names) to a
// parameter and says what is wrong, or "". "*" (all subjects) passes when
// wildcard is set.
func badName(param, value string, check func(string) error, wildcard bool) string {
	if wildcard && value == "*" {
		return ""
	}
	if err := check(value); err != nil {
		return fmt.Sprintf("参数 %s 不合法 (parameter %s: %v)", param, param, err)
	}
	return ""
}

func (p params) int(name string) (int, error) {
	v := p.str(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%q is not an integer", name, v)
	}
	return n, nil
}

// actions are the POST /management actions, by QMQ's names.
func (s *Server) actions() map[string]action {
	return map[string]action{
		"AddBroker":                 {true, s.addBroker},
		"ReplaceBroker":             {true, s.replaceBroker},
		"SwapMasterSlave":           {true, s.swapMasterSlave},
		"ListBrokers":               {false, s.listBrokers},
		"ListBrokerGroups":          {false, s.listBrokerGroups},
		"ListSubjectRoutes":         {false, s.listSubjectRoutes},
		"AddSubjectBrokerGroup":     {true, s.addSubjectBrokerGroup},
		"RemoveSubjectBrokerGroup":  {true, s.removeSubjectBrokerGroup},
		"AddNewSubject":             {true, s.addNewSubject},
		"ExtendSubjectRoute":        {true, s.extendSubjectRoute},
		"AddDb":                     {true, s.addDB},
		"MarkReadonlyBrokerGroup":   {true, s.markReadonly},
		"UnMarkReadonlyBrokerGroup": {true, s.unmarkReadonly},
		"ResetOffset":               {true, s.resetOffset},
		"CancelDelay":               {true, s.cancelDelay},
	}
}

func (s *Server) handleManagement(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST /management with form parameters action=<name>&…", http.StatusMethodNotAllowed)
		return
	}
	// An oversize body is 413 and an over-long parameter 400, never
	// echoed: a parse error must not read as a missing action.
	if !httpguard.ParseForm(w, r) {
		return
	}
	name := r.FormValue("action")
	if name == "" {
		writeText(w, "need provide action param (e.g. action=ListBrokers)\n")
		return
	}
	actions := s.actions()
	a, ok := actions[name]
	if !ok {
		names := make([]string, 0, len(actions))
		for n := range actions {
			names = append(names, n)
		}
		slices.Sort(names)
		writeText(w, fmt.Sprintf("不支持的 action: %s (supported: %s)\n", httpguard.Clip(name, 100), strings.Join(names, ", ")))
		return
	}
	var result any
	if a.needsToken && !s.dynamic().ValidToken(r.Header.Get("X-Api-Token")) {
		s.log.Warn("management action refused: bad token", "action", name, "remote", r.RemoteAddr)
		result = fail("%s", badTokenMessage)
	} else {
		result = a.run(r.Context(), params{r})
	}
	status := "0"
	if ar, ok := result.(actionResult); ok && ar.Status != 0 {
		status = "-1"
		if ar.Message != badTokenMessage { // already logged as a refusal above
			s.log.Info("management action failed", "action", name, "message", ar.Message)
		}
	} else if m, ok := result.(map[string]any); ok && m["error"] != nil {
		status = "-1"
	}
	s.m.management.WithLabelValues(name, status).Inc()
	writeJSON(w, result)
}

func (s *Server) brokerFromParams(p params) (store.Broker, []string) {
	var problems []string
	b := store.Broker{Group: p.str("brokerGroup"), Hostname: p.str("hostname"), IP: p.str("ip")}
	var err error
	if b.Role, err = p.int("role"); err != nil {
		problems = append(problems, err.Error()+" (0 master, 1 slave, 4 backup, 5 delay master, 6 delay slave)")
	}
	if b.ServePort, err = p.int("servePort"); err != nil {
		problems = append(problems, err.Error())
	}
	if b.SyncPort, err = p.int("syncPort"); err != nil {
		problems = append(problems, err.Error())
	}
	return b, problems
}

// validateBroker applies QMQ's AddBroker rules and ours; it returns problems and warnings.
func validateBroker(b store.Broker) (problems, warnings []string) {
	if b.Group == "" {
		problems = append(problems, "please provide broker group name (--brokerGroup)")
	} else if len(b.Group) > 30 {
		problems = append(problems, fmt.Sprintf("brokerGroup %q is %d characters; at most 30 fit the broker_group table", b.Group, len(b.Group)))
	}
	switch b.Role {
	case store.RoleMaster, store.RoleSlave, store.RoleBackup, store.RoleDelayMaster, store.RoleDelaySlave:
	case store.RoleDelayBackup:
		problems = append(problems, "role 7 (DELAY_BACKUP) is not supported, as in QMQ")
	default:
		problems = append(problems, fmt.Sprintf("invalid broker role code %d: use 0 master, 1 slave, 4 backup, 5 delay master, 6 delay slave", b.Role))
	}
	if b.Hostname == "" {
		problems = append(problems, "please provide broker hostname (--hostname, the output of `hostname` on the broker machine)")
	}
	ip := net.ParseIP(b.IP)
	if b.IP == "" {
		problems = append(problems, "please provide broker ip (--ip)")
	} else if ip == nil || ip.To4() == nil {
		problems = append(problems, fmt.Sprintf("ip %q is not an IPv4 address", b.IP))
	} else if ip.IsLoopback() {
		warnings = append(warnings, fmt.Sprintf("ip %s is a loopback address: clients on other machines cannot reach this broker; register the machine's real IP unless everything runs on one host", b.IP))
	}
	for _, port := range []struct {
		name string
		v    int
	}{{"servePort", b.ServePort}, {"syncPort", b.SyncPort}} {
		if port.v < 1 || port.v > 65535 {
			problems = append(problems, fmt.Sprintf("%s %d is not a TCP port (1-65535)", port.name, port.v))
		}
	}
	if b.ServePort == b.SyncPort {
		problems = append(problems, fmt.Sprintf("serve port and sync port should valid and should be different port: servePort and syncPort are both %d (servePort is the broker's broker.port, syncPort its sync.port)", b.ServePort))
	}
	return problems, warnings
}

func (s *Server) addBroker(ctx context.Context, p params) any {
	b, problems := s.brokerFromParams(p)
	more, warnings := validateBroker(b)
	problems = append(problems, more...)
	// ifAbsent (ours; qmq tools AddBroker --ifAbsent) is only sent when given,
	// so QMQ's requests are handled as before.
	ifAbsent := false
	if v := p.str("ifAbsent"); v != "" {
		var err error
		if ifAbsent, err = strconv.ParseBool(v); err != nil {
			problems = append(problems, fmt.Sprintf("parameter ifAbsent=%q is not true or false", v))
		}
	}
	if len(problems) > 0 {
		return fail("add broker refused: %s", strings.Join(problems, "; "))
	}
	existing, err := s.store.ListBrokers(ctx)
	if err != nil {
		return fail("add broker failed: cannot read the broker table: %v", err)
	}
	if ifAbsent {
		if res, done := alreadyMember(existing, b); done {
			return res
		}
	}
	var inGroup []store.Broker
	for _, e := range existing {
		if e.Group == b.Group {
			inGroup = append(inGroup, e)
		}
	}
	for _, e := range inGroup {
		if roleKind(e.Role) != roleKind(b.Role) {
			return fail("The brokerGroup: %s is already used by a %s group (%s on %s:%d); real-time and delay groups must have different names, e.g. --brokerGroup=%s_delay",
				b.Group, strings.ToLower(kindName(roleKind(e.Role))), roleName(e.Role), e.Hostname, e.ServePort, b.Group)
		}
		if e.Role == b.Role {
			return fail("The brokerGroup: %s with role: %s already exists (%s, ip %s, servePort %d); to move it to another machine use qmq tools ReplaceBroker with the same flags",
				b.Group, roleName(b.Role), e.Hostname, e.IP, e.ServePort)
		}
	}
	if len(inGroup) >= 3 {
		return fail("The brokerGroup: %s already has %d members (a group is at most master, slave and backup)", b.Group, len(inGroup))
	}
	if e, ok := findBroker(existing, b.Hostname, b.ServePort); ok {
		return fail("broker already added: %s:%d is registered as %s of group %s; each broker process on a host needs its own servePort (broker.port)",
			e.Hostname, e.ServePort, roleName(e.Role), e.Group)
	}
	if err := s.store.InsertBroker(ctx, b); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			if ifAbsent {
				// Registered by someone else since we read the table (the
				// same start script on a second metaserver): that is fine
				// if it is this very broker.
				if again, lerr := s.store.ListBrokers(ctx); lerr == nil {
					if res, done := alreadyMember(again, b); done {
						_ = s.cache.refresh(ctx)
						return res
					}
				}
			}
			return fail("broker group's role already exist or broker already added: %v", err)
		}
		return fail("add broker failed, caused by: %v", err)
	}
	s.cache.update(func(sn *snapshot) {
		if _, found := findBroker(sn.brokers, b.Hostname, b.ServePort); !found { // a refresh may have read it
			sn.brokers = append(slices.Clone(sn.brokers), b)
		}
	})
	s.log.Info("broker added", "group", b.Group, "role", roleName(b.Role), "hostname", b.Hostname, "ip", b.IP, "serve_port", b.ServePort, "sync_port", b.SyncPort)
	res := ok(toBrokerMeta(b))
	if len(warnings) > 0 {
		res.Message = "warning: " + strings.Join(warnings, "; ")
	}
	return res
}

// alreadyMember answers AddBroker --ifAbsent when b's hostname:servePort is
// already a member of b's group: success with the registered row when its ip
// and syncPort are b's, whatever its role (automatic failover swaps the
// roles of a group's rows, so a start script's role is only the initial
// one); a refusal when they differ, since the broker would then be reached
// at an address it does not serve. done is false when b is not a member.
func alreadyMember(existing []store.Broker, b store.Broker) (res actionResult, done bool) {
	for _, e := range existing {
		if e.Group != b.Group || e.Hostname != b.Hostname || e.ServePort != b.ServePort || roleKind(e.Role) != roleKind(b.Role) {
			continue // a delay role asked of a real-time member is refused below, as without ifAbsent
		}
		if e.IP != b.IP || e.SyncPort != b.SyncPort {
			return fail("add broker refused: %s:%d is already the %s of group %s with ip %s and syncPort %d, not ip %s and syncPort %d; if the broker moved, run qmq tools ReplaceBroker with --role=%d and the new values",
				e.Hostname, e.ServePort, roleName(e.Role), e.Group, e.IP, e.SyncPort, b.IP, b.SyncPort, e.Role), true
		}
		res := ok(toBrokerMeta(e))
		res.Message = fmt.Sprintf("already registered: %s:%d is the %s of group %s (this request said %s: failover swaps the roles of a group's brokers); nothing changed",
			e.Hostname, e.ServePort, roleName(e.Role), e.Group, roleName(b.Role))
		if e.Role == b.Role {
			res.Message = fmt.Sprintf("already registered: %s:%d is the %s of group %s; nothing changed", e.Hostname, e.ServePort, roleName(e.Role), e.Group)
		}
		return res, true
	}
	return actionResult{}, false
}

func (s *Server) replaceBroker(ctx context.Context, p params) any {
	b, problems := s.brokerFromParams(p)
	more, _ := validateBroker(b)
	problems = append(problems, more...)
	if len(problems) > 0 {
		return fail("replace broker refused: %s", strings.Join(problems, "; "))
	}
	old, err := s.store.ReplaceBroker(ctx, b)
	if errors.Is(err, store.ErrNotFound) {
		return fail("no exist broker with this broker group name and role: group %s has no %s row; use qmq tools AddBroker to add it", b.Group, roleName(b.Role))
	}
	if err != nil {
		return fail("replace broker action failed, caused by: %v", err)
	}
	_ = s.cache.refresh(ctx)
	s.log.Info("broker replaced", "group", b.Group, "role", roleName(b.Role), "old_hostname", old.Hostname, "hostname", b.Hostname)
	return ok(toBrokerMeta(old))
}

func (s *Server) listBrokers(ctx context.Context, p params) any {
	all, err := s.store.ListBrokers(ctx)
	if err != nil {
		all = s.cache.get().brokers // database away: the last snapshot is still true enough to list
		s.log.Warn("list brokers from cache: database unavailable", "error", err)
	}
	group := p.str("brokerGroup")
	out := []brokerMeta{}
	for _, b := range all {
		if group == "" || b.Group == group {
			out = append(out, toBrokerMeta(b))
		}
	}
	return ok(out)
}

func (s *Server) listBrokerGroups(ctx context.Context, _ params) any {
	snap := s.cache.get()
	groups, err := s.store.ListBrokerGroups(ctx)
	if err != nil {
		groups = sortedGroups(snap)
	}
	out := []brokerGroupJSON{}
	for _, g := range groups {
		j := brokerGroupJSON{GroupName: g.Name, Master: g.MasterAddress, Slaves: []string{}, UpdateTime: g.UpdateTime.UnixMilli(),
			BrokerState: stateName(g.State), Tag: g.Tag, Kind: kindName(g.Kind)}
		registeredMaster := ""
		for _, b := range snap.brokers {
			if b.Group != g.Name {
				continue
			}
			addr := net.JoinHostPort(b.IP, strconv.Itoa(b.ServePort))
			switch b.Role {
			case store.RoleSlave, store.RoleDelaySlave:
				j.Slaves = append(j.Slaves, addr)
			case store.RoleMaster, store.RoleDelayMaster:
				registeredMaster = addr
			}
		}
		// The stored master address changes when a master registers ONLINE;
		// until the new master of a swap does, it names the broker that is
		// now the slave. Show the master the broker table names instead.
		if registeredMaster != "" && slices.Contains(j.Slaves, j.Master) {
			j.Master = registeredMaster
		}
		out = append(out, j)
	}
	return out
}

func (s *Server) listSubjectRoutes(ctx context.Context, _ params) any {
	routes, err := s.store.ListSubjectRoutes(ctx)
	if err != nil {
		s.cache.get().routes.each(func(r store.SubjectRoute) { routes = append(routes, r) })
		slices.SortFunc(routes, func(a, b store.SubjectRoute) int { return strings.Compare(a.Subject, b.Subject) })
	}
	out := []subjectRouteJSON{}
	for _, r := range routes {
		out = append(out, toRouteJSON(r))
	}
	return out
}

func errorMap(msg string, data any) map[string]any {
	m := map[string]any{"error": msg}
	if data != nil {
		m["data"] = data
	}
	return m
}

func (s *Server) addSubjectBrokerGroup(ctx context.Context, p params) any {
	group, subject := p.str("brokerGroup"), p.name("subject")
	if group == "" || subject == "" {
		return errorMap("必须同时提供 brokerGroup 和 subject 两个参数 (both --brokerGroup and --subject are required)", nil)
	}
	if bad := badName("subject", subject, namerule.Subject, false); bad != "" {
		return errorMap(bad, nil)
	}
	if _, ok := s.cache.get().groups[group]; !ok {
		if err := s.cache.refresh(ctx); err != nil || s.cache.get().groups[group].Name == "" {
			return errorMap(fmt.Sprintf("提供的 brokerGroup 暂时不存在 (broker group %q has never come online; start its master first)", group), nil)
		}
	}
	for attempt := 0; attempt < maxRouteRetries; attempt++ {
		cur, exists, err := s.store.GetSubjectRoute(ctx, subject)
		if err != nil {
			return errorMap(fmt.Sprintf("cannot read route of %q: %v", subject, err), nil)
		}
		if !exists {
			return errorMap(fmt.Sprintf("提供的 subject 暂时没有分配过 brokerGroup，无法扩充 (subject %q has no route yet: it gets one when its first producer or consumer registers)", subject), nil)
		}
		if slices.Contains(cur.BrokerGroups, group) {
			return toRouteJSON(cur)
		}
		n, err := s.store.UpdateSubjectRoute(ctx, subject, cur.Version, append(slices.Clone(cur.BrokerGroups), group))
		if err != nil {
			return errorMap(fmt.Sprintf("cannot update route of %q: %v", subject, err), nil)
		}
		if n == 1 {
			return s.refreshedRoute(ctx, subject)
		}
	}
	return errorMap(fmt.Sprintf("route of %q kept changing under us; try again", subject), nil)
}

func (s *Server) refreshedRoute(ctx context.Context, subject string) any {
	_ = s.cache.refresh(ctx)
	r, _, err := s.store.GetSubjectRoute(ctx, subject)
	if err != nil {
		return errorMap(err.Error(), nil)
	}
	return toRouteJSON(r)
}

func (s *Server) removeSubjectBrokerGroup(ctx context.Context, p params) any {
	group, subject := p.str("brokerGroup"), p.str("subject")
	if group == "" || subject == "" {
		return fail("必须同时提供 brokerGroup 和 subject 两个参数 (both --brokerGroup and --subject are required)")
	}
	routes, err := s.store.ListSubjectRoutes(ctx)
	if err != nil {
		return fail("cannot read subject routes: %v", err)
	}
	errs := map[string]string{}
	found := false
	for _, r := range routes {
		if subject != "*" && r.Subject != subject {
			continue
		}
		found = true
		if !slices.Contains(r.BrokerGroups, group) {
			continue
		}
		if len(r.BrokerGroups) == 1 {
			errs[r.Subject] = "不允许删除主题的最后一个 brokerGroup (cannot remove the last broker group of a subject)"
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(r.BrokerGroups), func(g string) bool { return g == group })
		if n, err := s.store.UpdateSubjectRoute(ctx, r.Subject, r.Version, rest); err != nil || n != 1 {
			errs[r.Subject] = fmt.Sprintf("缩减 subject 对应 brokerGroup 失败 (route changed concurrently or database error: %v); retry", err)
		}
	}
	_ = s.cache.refresh(ctx)
	if subject != "*" && !found {
		return actionResult{Status: -1, Message: "提供的 subject 暂时没有分配过 brokerGroup (subject has no route)", Data: map[string]string{}}
	}
	if len(errs) > 0 {
		msg := "部分主题路由缩减失败"
		if subject != "*" {
			msg = "路由缩减失败"
		}
		return actionResult{Status: -1, Message: msg, Data: errs}
	}
	return ok(map[string]string{})
}

func (s *Server) addNewSubject(ctx context.Context, p params) any {
	subject, tag := p.name("subject"), p.str("tag")
	if subject == "" || tag == "" {
		return errorMap("必须同时提供 subject 和 tag 两个参数 (both --subject and --tag are required)", nil)
	}
	if bad := badName("subject", subject, namerule.Subject, false); bad != "" {
		return errorMap(bad, nil)
	}
	if info, found, err := s.store.GetSubjectInfo(ctx, subject); err != nil {
		return errorMap(fmt.Sprintf("cannot read subject_info: %v", err), nil)
	} else if found {
		return errorMap("主题已存在 (subject already exists)", subjectInfoJSON{info.Name, info.Tag, info.UpdateTime.UnixMilli()})
	}
	info := store.SubjectInfo{Name: subject, Tag: tag}
	if err := s.store.InsertSubjectInfo(ctx, info); err != nil {
		return errorMap(fmt.Sprintf("add subject failed: %v", err), nil)
	}
	_ = s.cache.refresh(ctx)
	return map[string]any{"data": subjectInfoJSON{subject, tag, nowMillis()}}
}

func (s *Server) extendSubjectRoute(ctx context.Context, p params) any {
	subject, related, added := p.name("relatedSubject"), p.str("relatedBrokerGroup"), p.str("newBrokerGroup")
	if subject == "" || related == "" || added == "" {
		return fail("必须同时提供 relatedSubject、relatedBrokerGroup 和 newBrokerGroup 三个参数 (all three are required)")
	}
	if bad := badName("relatedSubject", subject, namerule.Subject, true); bad != "" {
		return fail("%s", bad)
	}
	routes, err := s.store.ListSubjectRoutes(ctx)
	if err != nil {
		return fail("cannot read subject routes: %v", err)
	}
	updated := 0
	for _, r := range routes {
		if subject != "*" && r.Subject != subject {
			continue
		}
		if !slices.Contains(r.BrokerGroups, related) || slices.Contains(r.BrokerGroups, added) {
			continue
		}
		n, err := s.store.UpdateSubjectRoute(ctx, r.Subject, r.Version, append(slices.Clone(r.BrokerGroups), added))
		if err != nil {
			return fail("extend route of %q failed after updating %d subjects: %v", r.Subject, updated, err)
		}
		updated += int(n)
	}
	_ = s.cache.refresh(ctx)
	return ok(fmt.Sprintf("成功更新%d个subject的路由", updated))
}

func (s *Server) addDB(ctx context.Context, p params) any {
	typ, host, user, pass, room := p.str("type"), p.str("host"), p.str("username"), p.r.FormValue("password"), p.str("room")
	if typ == "" {
		typ = "mmm"
	}
	if room == "" {
		room = "default"
	}
	port, err := p.int("port")
	if err != nil || host == "" || port < 1 || port > 65535 {
		return fail("register failed: need --host and a --port from 1 to 65535 (got host %q port %q)", host, p.str("port"))
	}
	d := store.ClientDB{URL: fmt.Sprintf("%s://%s:%d", typ, host, port), User: user, Password: pass, Room: room}
	if err := s.store.InsertClientDB(ctx, d); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return fail("register failed: %s is already registered", d.URL)
		}
		return fail("register failed %v", err)
	}
	return ok("register success")
}

func (s *Server) markReadonly(ctx context.Context, p params) any {
	subject, group := p.name("subject"), p.str("brokerGroup")
	if subject == "" || group == "" {
		return fail("必须同时提供 subject 和 brokerGroup 两个参数 (both are required; --subject defaults to * in qmq tools)")
	}
	if bad := badName("subject", subject, namerule.Subject, true); bad != "" {
		return fail("%s", bad)
	}
	if err := s.store.InsertReadonlySetting(ctx, store.ReadonlySetting{Subject: subject, BrokerGroup: group}); err != nil {
		return fail("%v", err)
	}
	_ = s.cache.refresh(ctx)
	return ok("success")
}

func (s *Server) unmarkReadonly(ctx context.Context, p params) any {
	subject, group := p.str("subject"), p.str("brokerGroup")
	if subject == "" || group == "" {
		return fail("必须同时提供 subject 和 brokerGroup 两个参数 (both are required; --subject defaults to * in qmq tools)")
	}
	if _, err := s.store.DeleteReadonlySetting(ctx, store.ReadonlySetting{Subject: subject, BrokerGroup: group}); err != nil {
		return fail("%v", err)
	}
	_ = s.cache.refresh(ctx)
	return ok("success")
}

// resetOffset sends CONSUME_MANAGE to the master of every group in the
// subject's route (retry subjects use their subject's route, as in QMQ).
// Codes 1 (latest) and 2 (earliest) are QMQ's; code 3 (ours) moves the
// group to the first message stored at or after the timestamp parameter
// (milliseconds since the epoch, or RFC 3339), and the answer lists where
// each broker group's cursor now is.
func (s *Server) resetOffset(ctx context.Context, p params) any {
	subject, group := p.name("subject"), p.name("group")
	code, err := p.int("code")
	if subject == "" || group == "" {
		return fail("subject and consumerGroup required (--subject and --group)")
	}
	// A retry subject's group can be moved too: %RETRY%<subject>%<group>.
	if bad := cmp.Or(badName("subject", subject, namerule.WireSubject, false), badName("group", group, namerule.Group, false)); bad != "" {
		return fail("%s", bad)
	}
	if err != nil || code < 1 || code > 3 {
		return fail("action must 1 or 2, LATEST=1, EARLIEST=2 (or 3 = TIMESTAMP with --timestamp, ours) (got %q)", p.str("code"))
	}
	var body []byte
	var at time.Time
	if code == int(protocol.ConsumeFromTimestamp) {
		if at, err = parseResetTime(p.str("timestamp")); err != nil {
			return fail("%v", err)
		}
		body = protocol.AppendConsumeManageTimestamp(nil, subject, group, at.UnixMilli())
	} else {
		body = protocol.AppendConsumeManageRequest(nil, &protocol.ConsumeManageRequest{Subject: subject, ConsumerGroup: group, Code: int32(code)})
	}
	snap := s.cache.get()
	route, found := snap.routes.get(protocol.RealSubject(subject))
	if !found || len(route.BrokerGroups) == 0 {
		return fail("find no route for subject %q: nobody has produced or consumed it yet", subject)
	}
	var results []resetResult
	for _, name := range route.BrokerGroups {
		g, ok := snap.groups[name]
		if !ok || g.MasterAddress == "" {
			return fail("reset failed: brokerGroupName=%s has no known master address%s", name, resetSoFar(results))
		}
		resp, err := s.callBrokerBody(ctx, g.MasterAddress, protocol.CodeConsumeManage, body)
		if err != nil {
			s.log.Error("send consume manage request failed", "group", name, "master", g.MasterAddress, "error", err)
			return fail("reset failed: brokerGroupName=%s (master %s): %v%s", name, g.MasterAddress, err, resetSoFar(results))
		}
		if code != int(protocol.ConsumeFromTimestamp) {
			continue
		}
		r, ok, err := protocol.DecodeConsumeManageResult(resp)
		if err != nil || !ok {
			return fail("reset failed: brokerGroupName=%s (master %s) ignored the reset to a time: it answered without saying where the group now is, so it does not support CONSUME_MANAGE code 3 (a QMQ Java broker?). Nothing changed there; use --action=1 or 2 for it%s",
				name, g.MasterAddress, resetSoFar(results))
		}
		rr := resetResult{BrokerGroup: name, NextSequence: r.NextSequence}
		if r.MessageTimestamp >= 0 {
			rr.MessageTime = time.UnixMilli(r.MessageTimestamp).UTC().Format(time.RFC3339Nano)
		}
		results = append(results, rr)
	}
	if code != int(protocol.ConsumeFromTimestamp) {
		return ok("success")
	}
	return actionResult{Status: 0, Message: fmt.Sprintf("success: consumer group %s of %s moved, in %d broker groups, to the first message stored at or after %s",
		group, subject, len(results), at.UTC().Format(time.RFC3339Nano)), Data: results}
}

// resetResult is one broker group's answer to a reset to a time.
type resetResult struct {
	BrokerGroup  string `json:"brokerGroup"`
	NextSequence int64  `json:"nextSequence"`          // the consumer-log sequence the group pulls next
	MessageTime  string `json:"messageTime,omitempty"` // when that message was stored; absent: none yet
}

// resetSoFar tells which groups were already moved when a later one failed.
func resetSoFar(done []resetResult) string {
	if len(done) == 0 {
		return ""
	}
	names := make([]string, len(done))
	for i, r := range done {
		names[i] = r.BrokerGroup
	}
	return fmt.Sprintf(" (already moved in %s; run the command again once it is fixed)", strings.Join(names, ", "))
}

// parseResetTime reads ResetOffset's timestamp: milliseconds since the epoch
// or an RFC 3339 time.
func parseResetTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("action 3 (TIMESTAMP) needs --timestamp: milliseconds since the epoch (e.g. %d) or an RFC 3339 time (e.g. %s)",
			time.Now().Add(-time.Hour).UnixMilli(), time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms < 0 {
			return time.Time{}, fmt.Errorf("--timestamp=%s is negative; want milliseconds since the epoch or an RFC 3339 time", v)
		}
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--timestamp=%q is neither milliseconds since the epoch nor an RFC 3339 time like %s", v, time.Now().UTC().Format(time.RFC3339))
	}
	return t, nil
}

// callBrokerBody sends one request to a broker and returns the body of a
// successful answer.
func (s *Server) callBrokerBody(ctx context.Context, addr string, code int16, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := remoting.Dial(ctx, addr, s.settings.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.Call(ctx, code, body)
	if err != nil {
		return nil, err
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return nil, fmt.Errorf("broker answered %s: %s", protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	return resp.Body, nil
}
