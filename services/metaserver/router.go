package metaserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

const (
	defaultTag = "_default_"
	// delayGroupsPerProducer is hard-coded to 2 in QMQ's DelayRouter.
	delayGroupsPerProducer = 2
	maxRouteRetries        = 5
)

// route returns the broker groups a client should use, in QMQ's order of
// rules: delay producers get live delay groups; everyone else gets the
// subject's route (created or widened to min.group.num groups on demand),
// minus readonly groups for producers, minus groups that are not serving.
// withheld names the route's groups left out and why (ours, for the answer's
// trailer: a producer left with no group can say why).
func (s *Server) route(ctx context.Context, req *protocol.ClientRegisterRequest) (out []store.BrokerGroup, withheld []protocol.WithheldGroup, err error) {
	snap := s.cache.get()
	if req.ClientTypeCode == protocol.ClientTypeDelayProducer {
		var live []store.BrokerGroup
		for _, g := range sortedGroups(snap) {
			if g.Kind == store.KindDelay && g.State != store.StateNRW {
				live = append(live, g)
			}
		}
		return pickRandom(live, delayGroupsPerProducer), nil, nil
	}

	subject := protocol.RealSubject(req.Subject)
	route, ok := snap.routes.get(subject)
	if min := s.dynamic().MinGroupNum; !ok || len(route.BrokerGroups) < min {
		widened, err := s.assignRoute(ctx, subject, min)
		switch {
		case err == nil:
			route = widened
		case ok && len(route.BrokerGroups) > 0:
			// Serving the existing route beats failing: the route only lacks extra groups.
			s.log.Warn("cannot widen route; serving the existing one", "subject", subject, "groups", route.BrokerGroups, "min.group.num", min, "error", err)
		default:
			return nil, nil, err
		}
	}

	snap = s.cache.get()
	for _, name := range route.BrokerGroups {
		g, ok := snap.groups[name]
		if !ok || g.State == store.StateNRW {
			withheld = append(withheld, protocol.WithheldGroup{Name: name, Reason: "no master online (NRW: its master is stopped, missed heartbeats, or a swap waits for the new master)"})
			continue
		}
		if req.ClientTypeCode == protocol.ClientTypeProducer && (isReadonly(snap, subject, name) || g.State == store.StateR) {
			// Read-only by an admin (MarkReadonly) or by its own heartbeat (a
			// master whose slave lags, slave.message.lag.mark_readonly).
			reason := "read-only for producers (MarkReadonlyBrokerGroup; UnMarkReadonly undoes it)"
			if !isReadonly(snap, subject, name) {
				reason = "read-only: its master's slave lags (slave.message.lag.mark_readonly)"
			}
			withheld = append(withheld, protocol.WithheldGroup{Name: name, Reason: reason})
			continue
		}
		out = append(out, g)
	}
	return out, withheld, nil
}

func isReadonly(snap *snapshot, subject, group string) bool {
	return snap.readonly[subject][group] || snap.readonly["*"][group]
}

// assignRoute gives subject at least min broker groups, creating its route or
// adding groups with optimistic versioning, so that several metaservers
// sharing one database agree on the result.
func (s *Server) assignRoute(ctx context.Context, subject string, min int) (store.SubjectRoute, error) {
	for attempt := 0; attempt < maxRouteRetries; attempt++ {
		cur, exists, err := s.store.GetSubjectRoute(ctx, subject)
		if err != nil {
			return store.SubjectRoute{}, fmt.Errorf("assign broker groups to subject %q: read its route: %w (the database is needed for new subjects; existing subjects keep their routes)", subject, err)
		}
		if exists && len(cur.BrokerGroups) >= min {
			s.rememberRoute(cur)
			return cur, nil
		}
		picked := pickRandom(s.candidates(subject, cur.BrokerGroups), min-len(cur.BrokerGroups))
		if len(picked) == 0 {
			if exists && len(cur.BrokerGroups) > 0 {
				s.rememberRoute(cur)
				return cur, nil
			}
			return store.SubjectRoute{}, s.noGroupsError(subject)
		}
		names := append([]string(nil), cur.BrokerGroups...)
		for _, g := range picked {
			names = append(names, g.Name)
		}
		if !exists {
			err = s.store.InsertSubjectRoute(ctx, subject, names)
			if errors.Is(err, store.ErrDuplicate) {
				continue // another metaserver created it first: take theirs
			}
		} else {
			var n int64
			n, err = s.store.UpdateSubjectRoute(ctx, subject, cur.Version, names)
			if err == nil && n == 0 {
				continue // lost the version race: re-read and retry
			}
		}
		if err != nil {
			return store.SubjectRoute{}, fmt.Errorf("assign broker groups %v to subject %q: %w", names, subject, err)
		}
		s.log.Info("assigned broker groups to subject", "subject", subject, "groups", names)
	}
	cur, exists, err := s.store.GetSubjectRoute(ctx, subject)
	if err != nil || !exists {
		return store.SubjectRoute{}, fmt.Errorf("assign broker groups to subject %q: route still missing after %d attempts (err: %v)", subject, maxRouteRetries, err)
	}
	s.rememberRoute(cur)
	return cur, nil
}

func (s *Server) rememberRoute(r store.SubjectRoute) {
	s.cache.update(func(sn *snapshot) { sn.routes.set(r) })
}

// candidates are the live real-time groups whose tag matches the subject's,
// excluding those already in the route. A subject without a tag (or whose tag
// no group carries) uses the untagged groups.
func (s *Server) candidates(subject string, exclude []string) []store.BrokerGroup {
	snap := s.cache.get()
	skip := map[string]bool{}
	for _, n := range exclude {
		skip[n] = true
	}
	want := snap.subjects[subject].Tag
	match := func(tag string) bool {
		if want == "" || want == defaultTag {
			return tag == "" || tag == defaultTag
		}
		return tag == want
	}
	var tagged, untagged []store.BrokerGroup
	for _, g := range sortedGroups(snap) {
		if g.Kind != store.KindNormal || g.State == store.StateNRW || skip[g.Name] {
			continue
		}
		if match(g.Tag) {
			tagged = append(tagged, g)
		} else if g.Tag == "" || g.Tag == defaultTag {
			untagged = append(untagged, g)
		}
	}
	if len(tagged) == 0 && want != "" && want != defaultTag {
		s.log.Warn("no live broker group carries the subject's tag; using untagged groups", "subject", subject, "tag", want)
		return untagged
	}
	return tagged
}

// noGroupsError explains why a new subject got no broker group and what to do.
func (s *Server) noGroupsError(subject string) error {
	snap := s.cache.get()
	var states []string
	for _, g := range sortedGroups(snap) {
		if g.Kind == store.KindNormal {
			states = append(states, fmt.Sprintf("%s=%s", g.Name, stateName(g.State)))
		}
	}
	if len(states) == 0 {
		return fmt.Errorf("no broker group can serve subject %q: no real-time broker master has come online yet (broker_group is empty). Register brokers with `qmq tools AddBroker … --role=0`, start them, and check the broker log for its ONLINE registration", subject)
	}
	return fmt.Errorf("no broker group can serve subject %q: none is live (%s); a group becomes NRW when its master stops or misses heartbeats for heartbeat.timeout.ms — start the master or check its connection to this metaserver", subject, strings.Join(states, ", "))
}

func sortedGroups(snap *snapshot) []store.BrokerGroup {
	out := make([]store.BrokerGroup, 0, len(snap.groups))
	for _, g := range snap.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// pickRandom returns n distinct elements of in, in random order (QMQ's "random" load balancer).
func pickRandom(in []store.BrokerGroup, n int) []store.BrokerGroup {
	if n <= 0 {
		return nil
	}
	out := append([]store.BrokerGroup(nil), in...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if len(out) > n {
		out = out[:n]
	}
	return out
}
