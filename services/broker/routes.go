package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// routeChecker tells SEND_MESSAGE whether a subject is routed to this
// broker's group (ours: QMQ's broker stores whatever it is sent). It asks the
// metaserver with QUERY_SUBJECT_ROUTE and caches the answers per real
// subject (retry and dead-letter subjects are checked as their subject):
//
//   - a subject routed here is accepted from the cache, and re-checked in the
//     background every subject.route.refresh.ms;
//   - a miss (unknown subject, or a refusal older than
//     subject.route.negative.ttl.ms) asks the metaserver before answering,
//     so a route a producer's CLIENT_REGISTER created a moment ago is
//     accepted; a refusal is remembered that long, so a flood of sends to an
//     unrouted subject costs one question per TTL;
//   - it fails open: when the metaserver cannot answer (unreachable, slower
//     than subject.route.timeout.ms, its database down, or a Java metaserver
//     without this request), messages are accepted and one warning is logged
//     per subject.route.refresh.ms. A metaserver outage never stops produce.
//
// One question is in flight at a time: concurrent misses wait for it (or
// fail open when their timeout ends first) and take its answers.
type routeChecker struct {
	s *instance

	mu        sync.Mutex
	entries   map[string]*routeEntry // by real subject
	downUntil time.Time              // misses are accepted without asking until then
	failing   bool                   // the last question failed
	warnedAt  time.Time              // the last "cannot check" warning

	asking chan struct{} // one question at a time (a lock a waiter can give up on); guards conn
	conn   *remoting.Client
	addr   string
}

type routeEntry struct {
	assigned bool      // routed to this broker's group
	groups   []string  // the route's groups (for the refusal message); nil = no route
	checked  time.Time // when the metaserver answered
	used     time.Time // last send that asked; entries unused for long are dropped
}

// errRouteUnsupported: the metaserver answered UNKNOWN_CODE.
var errRouteUnsupported = errors.New("the metaserver does not answer QUERY_SUBJECT_ROUTE (a QMQ Java metaserver, or an older qmq-go one), so subjects cannot be checked against their routes")

func newRouteChecker(s *instance) *routeChecker {
	return &routeChecker{s: s, entries: make(map[string]*routeEntry), asking: make(chan struct{}, 1)}
}

// refusals returns, for the real subjects of subjects not routed to group,
// why (a sentence for the producer). Nil when all may be stored.
func (rc *routeChecker) refusals(ctx context.Context, group string, subjects []string) map[string]string {
	if !rc.s.settings.RouteCheck || group == "" || len(subjects) == 0 {
		return nil
	}
	start := time.Now()
	var miss []string
	out := map[string]string{}
	rc.mu.Lock()
	for _, sub := range subjects {
		e := rc.entries[sub]
		if e != nil {
			e.used = start
			if e.assigned {
				continue
			}
			if start.Sub(e.checked) < rc.s.settings.RouteNegativeTTL {
				out[sub] = refusal(sub, group, e.groups)
				continue
			}
		}
		miss = append(miss, sub)
	}
	down := start.Before(rc.downUntil)
	rc.mu.Unlock()
	if len(miss) > 0 && !down {
		qctx, cancel := context.WithTimeout(ctx, rc.s.settings.RouteTimeout)
		rc.ask(qctx, group, miss, start)
		cancel()
		rc.mu.Lock()
		for _, sub := range miss {
			// Only an answer given after this send arrived counts; without
			// one (the metaserver could not answer) the message is accepted.
			if e := rc.entries[sub]; e != nil && !e.assigned && !e.checked.Before(start) {
				out[sub] = refusal(sub, group, e.groups)
			}
		}
		rc.mu.Unlock()
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func refusal(subject, group string, groups []string) string {
	if len(groups) == 0 {
		return fmt.Sprintf("subject %q is not assigned to any broker group: no producer or consumer has registered it with the metaserver yet. Producers must send CLIENT_REGISTER before SEND_MESSAGE (QMQ clients do) and send to the broker groups it answers", subject)
	}
	return fmt.Sprintf("subject %q is not assigned to broker group %s: its route is %s. Register the producer with the metaserver again (CLIENT_REGISTER) and send to those groups, or add this group to the route with `qmq tools AddSubjectBrokerGroup --subject=%s --brokerGroup=%s`",
		subject, group, strings.Join(groups, ","), subject, group)
}

// ask asks the metaserver about subjects and records the answers. Subjects
// answered since notBefore (by a concurrent question) are not asked again.
// A failure is recorded (fail open), not returned.
func (rc *routeChecker) ask(ctx context.Context, group string, subjects []string, notBefore time.Time) {
	select {
	case rc.asking <- struct{}{}:
	case <-ctx.Done():
		return // the question in flight took too long: accept
	}
	defer func() { <-rc.asking }()
	rc.mu.Lock()
	todo := subjects[:0:0]
	for _, sub := range subjects {
		if e := rc.entries[sub]; e == nil || e.checked.Before(notBefore) {
			todo = append(todo, sub)
		}
	}
	rc.mu.Unlock()
	for len(todo) > 0 {
		n := min(len(todo), protocol.MaxRouteQuerySubjects)
		routes, err := rc.query(ctx, todo[:n])
		if err != nil {
			rc.failed(err)
			return
		}
		rc.record(group, routes)
		todo = todo[n:]
	}
}

// query sends one QUERY_SUBJECT_ROUTE, locating and dialing the metaserver
// when there is no connection. The caller holds rc.asking.
func (rc *routeChecker) query(ctx context.Context, subjects []string) ([]protocol.SubjectRoute, error) {
	rc.s.m.routeQueries.Inc()
	if rc.conn == nil {
		addr, err := meta.Locate(ctx, rc.s.settings.MetaEndpoint)
		if err != nil {
			return nil, err
		}
		c, err := remoting.Dial(ctx, addr, protocol.DefaultMaxFrameSize)
		if err != nil {
			return nil, fmt.Errorf("connect to metaserver %s: %w", addr, err)
		}
		rc.conn, rc.addr = c, addr
	}
	resp, err := rc.conn.Call(ctx, protocol.CodeQuerySubjectRoute, protocol.AppendSubjectRouteQuery(nil, subjects))
	if err != nil {
		rc.closeConn()
		return nil, fmt.Errorf("QUERY_SUBJECT_ROUTE to metaserver %s: %w", rc.addr, err)
	}
	switch resp.Header.Code {
	case protocol.CodeSuccess:
	case protocol.CodeUnknownCode:
		return nil, errRouteUnsupported
	default:
		return nil, fmt.Errorf("metaserver %s refused QUERY_SUBJECT_ROUTE: %s: %s", rc.addr, protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	routes, err := protocol.DecodeSubjectRoutes(resp.Body)
	if err != nil {
		rc.closeConn()
		return nil, fmt.Errorf("metaserver %s: %w", rc.addr, err)
	}
	return routes, nil
}

func (rc *routeChecker) closeConn() {
	if rc.conn != nil {
		rc.conn.Close()
		rc.conn = nil
	}
}

// record stores answers. A subject the metaserver could not look up is not
// stored (its messages are accepted) and counts as a failure.
func (rc *routeChecker) record(group string, routes []protocol.SubjectRoute) {
	now := time.Now()
	unknown := 0
	rc.mu.Lock()
	for _, r := range routes {
		if r.Status == protocol.RouteUnknown {
			unknown++
			continue
		}
		assigned := r.Status == protocol.RouteFound && slices.Contains(r.Groups, group)
		e := rc.entries[r.Subject]
		if e == nil {
			e = &routeEntry{used: now}
			rc.entries[strings.Clone(r.Subject)] = e
		} else if e.assigned && !assigned {
			rc.s.log.Warn("subject is no longer routed to this broker group; its messages will be refused", "subject", r.Subject, "group", group, "route", r.Groups)
		}
		e.assigned, e.groups, e.checked = assigned, r.Groups, now
	}
	rc.mu.Unlock()
	if unknown > 0 {
		rc.failed(fmt.Errorf("the metaserver could not read %d subject routes from its database", unknown))
		return
	}
	rc.mu.Lock()
	if rc.failing {
		rc.failing = false
		rc.s.log.Info("subject route checks work again", "metaserver", rc.addr)
	}
	rc.mu.Unlock()
}

// failed starts a fail-open period of meta.retry.interval.ms (or of
// subject.route.refresh.ms for a metaserver without the request) and logs
// one warning per subject.route.refresh.ms.
func (rc *routeChecker) failed(err error) {
	s := rc.s
	s.m.routeQueryFailures.Inc()
	now := time.Now()
	downFor := s.settings.MetaRetry
	if errors.Is(err, errRouteUnsupported) {
		downFor = max(downFor, s.settings.RouteRefresh)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.downUntil = now.Add(downFor)
	if !rc.failing || now.Sub(rc.warnedAt) >= s.settings.RouteRefresh {
		s.log.Warn("cannot check subjects against their routes; accepting messages for subjects not checked yet until the metaserver answers",
			"error", err, "retry_in", downFor, "next_warning_in", s.settings.RouteRefresh)
		rc.warnedAt = now
	}
	rc.failing = true
}

// run re-checks the subjects routed here every subject.route.refresh.ms and
// forgets entries no send asked about for ten periods.
func (rc *routeChecker) run(ctx context.Context) {
	if !rc.s.settings.RouteCheck {
		return
	}
	every := rc.s.settings.RouteRefresh
	for backoff.Sleep(ctx, every) == nil {
		group := rc.s.Group()
		now := time.Now()
		var subjects []string
		rc.mu.Lock()
		for sub, e := range rc.entries {
			switch {
			case now.Sub(e.used) > 10*every:
				delete(rc.entries, sub)
			case e.assigned:
				subjects = append(subjects, sub)
			case now.Sub(e.checked) >= rc.s.settings.RouteNegativeTTL:
				delete(rc.entries, sub) // an expired refusal: the next send asks again
			}
		}
		rc.mu.Unlock()
		if len(subjects) == 0 || group == "" {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, max(rc.s.settings.RouteTimeout, 5*time.Second))
		rc.ask(qctx, group, subjects, now)
		cancel()
	}
}

// close closes the connection to the metaserver; Run calls it once the
// handlers and run have returned.
func (rc *routeChecker) close() {
	rc.asking <- struct{}{}
	rc.closeConn()
	<-rc.asking
}
