package protocol

import "fmt"

// CodeQuerySubjectRoute (ours; QMQ has no such request) asks the metaserver
// which broker groups serve some subjects, without creating routes or
// recording a client the way CLIENT_REGISTER does. A broker uses it to refuse
// messages for subjects that are not routed to its group. The code is far
// from QMQ's so that a future QMQ request cannot collide with it; a Java
// metaserver answers it UNKNOWN_CODE.
const CodeQuerySubjectRoute int16 = 1035

// MaxRouteQuerySubjects bounds the subjects of one QUERY_SUBJECT_ROUTE.
const MaxRouteQuerySubjects = 1000

// SubjectRoute statuses in a QUERY_SUBJECT_ROUTE response.
const (
	RouteFound   uint8 = 0 // Groups is the subject's route
	RouteMissing uint8 = 1 // the subject has no route (nobody registered it)
	RouteUnknown uint8 = 2 // the metaserver could not tell (its database is unreachable)
)

func init() { requestNames[CodeQuerySubjectRoute] = "QUERY_SUBJECT_ROUTE" }

// AppendSubjectRouteQuery appends a QUERY_SUBJECT_ROUTE request body:
// count i16 | subject str16 × count.
func AppendSubjectRouteQuery(dst []byte, subjects []string) []byte {
	dst = AppendInt16(dst, int16(len(subjects)))
	for _, s := range subjects {
		dst = AppendString16(dst, s)
	}
	return dst
}

// DecodeSubjectRouteQuery parses a QUERY_SUBJECT_ROUTE request body.
func DecodeSubjectRouteQuery(body []byte) ([]string, error) {
	d := NewDecoder(body)
	n := int(d.Int16())
	if d.Err() == nil && (n < 0 || n > MaxRouteQuerySubjects) {
		d.Failf("QUERY_SUBJECT_ROUTE asks for %d subjects; between 0 and %d are allowed", n, MaxRouteQuerySubjects)
	}
	var out []string
	for i := 0; i < n && d.Err() == nil; i++ {
		out = append(out, d.String16())
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode QUERY_SUBJECT_ROUTE request: %w", err)
	}
	return out, nil
}

// SubjectRoute is one subject's answer in a QUERY_SUBJECT_ROUTE response.
type SubjectRoute struct {
	Subject string   // as asked
	Status  uint8    // RouteFound, RouteMissing or RouteUnknown
	Groups  []string // the broker groups of the route (RouteFound)
}

// AppendSubjectRoutes appends a QUERY_SUBJECT_ROUTE response body:
// count i16 | (subject str16 | status u8 | groupCount i16 | group str16 × groupCount) × count.
func AppendSubjectRoutes(dst []byte, routes []SubjectRoute) []byte {
	dst = AppendInt16(dst, int16(len(routes)))
	for _, r := range routes {
		dst = AppendString16(dst, r.Subject)
		dst = AppendUint8(dst, r.Status)
		dst = AppendInt16(dst, int16(len(r.Groups)))
		for _, g := range r.Groups {
			dst = AppendString16(dst, g)
		}
	}
	return dst
}

// DecodeSubjectRoutes parses a QUERY_SUBJECT_ROUTE response body.
func DecodeSubjectRoutes(body []byte) ([]SubjectRoute, error) {
	d := NewDecoder(body)
	n := int(d.Int16())
	if d.Err() == nil && n < 0 {
		d.Failf("QUERY_SUBJECT_ROUTE response has %d subjects", n)
	}
	var out []SubjectRoute
	for i := 0; i < n && d.Err() == nil; i++ {
		r := SubjectRoute{Subject: d.String16(), Status: d.Uint8()}
		g := int(d.Int16())
		if d.Err() == nil && g < 0 {
			d.Failf("QUERY_SUBJECT_ROUTE response: subject %q has %d groups", r.Subject, g)
		}
		for j := 0; j < g && d.Err() == nil; j++ {
			r.Groups = append(r.Groups, d.String16())
		}
		out = append(out, r)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("decode QUERY_SUBJECT_ROUTE response: %w", err)
	}
	return out, nil
}
