package metaserver

import (
	"context"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// handleSubjectRouteQuery answers QUERY_SUBJECT_ROUTE (ours): the broker
// groups of each subject asked, by its real subject (retry and dead-letter
// subjects route like their subject). Unlike CLIENT_REGISTER it creates
// nothing. Brokers use it to refuse messages for subjects not routed to
// them, caching the answers, so it is asked about misses only.
//
// A subject missing from the snapshot is looked up in the database: its
// route may have been created a moment ago by another metaserver, for the
// producer whose SEND_MESSAGE the broker is checking. When the database
// cannot answer, the subject is reported RouteUnknown and the broker lets
// its messages in.
func (s *Server) handleSubjectRouteQuery(ctx context.Context, req *remoting.Request) protocol.Frame {
	subjects, err := protocol.DecodeSubjectRouteQuery(req.Frame.Body)
	if err != nil {
		return errorResponse(req, protocol.CodeParamError, "malformed QUERY_SUBJECT_ROUTE body from %s: %v", req.RemoteAddr, err)
	}
	snap := s.cache.get()
	out := make([]protocol.SubjectRoute, 0, len(subjects))
	for _, subject := range subjects {
		r := protocol.SubjectRoute{Subject: subject, Status: protocol.RouteMissing}
		real := protocol.RealSubject(subject)
		route, ok := snap.routes.get(real)
		if !ok {
			fresh, exists, err := s.store.GetSubjectRoute(ctx, real)
			switch {
			case err != nil:
				r.Status = protocol.RouteUnknown
				s.log.Warn("cannot read a subject's route for a broker's check; the broker will accept its messages", "subject", real, "error", err)
			case exists:
				s.rememberRoute(fresh)
				route, ok = fresh, true
			}
		}
		if ok {
			r.Status, r.Groups = protocol.RouteFound, route.BrokerGroups
		}
		out = append(out, r)
	}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendSubjectRoutes(nil, out))
}
