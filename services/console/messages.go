package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// searchView is the message search and the dead-letter list: the query as
// given (so the page's URL is the search, shareable) and its results.
type searchView struct {
	Subject, ID, Group, Begin, End, Start string
	Searched                              bool
	Results                               []backupMessage
	Next                                  string
	// Retries are the retry copies of the message searched by id (each
	// numbered in its consumer group's %RETRY% log), linked to their detail.
	Retries     []backupMessage
	RetriesErr  string
	Err         string
	BadInput    string
	BackupAddrs string
}

const pageLen = 50

// parseWhen reads a time of a search form: datetime-local (UTC), RFC 3339
// or epoch milliseconds; "" is zero.
func parseWhen(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2006-01-02T15:04 (UTC), RFC 3339 or epoch milliseconds", v)
}

// search runs the page's query; dead picks the dead-letter list.
func (s *Server) search(r *http.Request, dead bool) (searchView, int) {
	f := r.Form
	v := searchView{Subject: strings.TrimSpace(f.Get("subject")), ID: strings.TrimSpace(f.Get("id")), Group: f.Get("group"),
		Begin: f.Get("begin"), End: f.Get("end"), Start: f.Get("start"), BackupAddrs: strings.Join(s.settings.BackupHTTP, ", ")}
	if v.Subject == "" {
		if v.ID != "" || v.Begin != "" || v.End != "" {
			v.BadInput = "Give the subject: the backup indexes messages by subject."
			return v, http.StatusBadRequest
		}
		return v, http.StatusOK
	}
	begin, err1 := parseWhen(v.Begin)
	end, err2 := parseWhen(v.End)
	if err := errors.Join(err1, err2); err != nil {
		v.BadInput = err.Error()
		return v, http.StatusBadRequest
	}
	if !begin.IsZero() && !end.IsZero() && end.Before(begin) {
		v.BadInput = "The end of the time window is before its beginning."
		return v, http.StatusBadRequest
	}
	v.Searched = true
	q := backupQuery{Subject: v.Subject, MessageID: v.ID, ConsumerGroup: v.Group, Len: pageLen, Start: v.Start}
	if !begin.IsZero() {
		q.Begin = begin.UnixMilli()
	}
	if !end.IsZero() {
		q.End = end.UnixMilli()
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	p, err := s.src.backup.Messages(ctx, q, dead)
	if err != nil {
		v.Err = err.Error()
		return v, http.StatusOK
	}
	v.Results, v.Next = p.List, string(p.Next)
	if !dead && v.ID != "" {
		v.Retries, v.RetriesErr = s.retries(ctx, v.Subject, v.ID)
	}
	return v, http.StatusOK
}

// retries lists the retry copies of message id, each linked to its detail.
// A 404 (a backup that never had the subject, or one older than the retry
// list) is no copy, not an error.
func (s *Server) retries(ctx context.Context, subject, id string) ([]backupMessage, string) {
	p, err := s.src.backup.Retries(ctx, subject, id)
	var refused *backupRefusal
	if errors.As(err, &refused) && refused.Status == http.StatusNotFound {
		return nil, ""
	}
	if err != nil {
		return nil, "retry copies: " + err.Error()
	}
	for i := range p.List {
		m := &p.List[i]
		m.DetailURL = "/messages/detail?" + url.Values{"subject": {protocol.RetrySubject(subject, m.ConsumerGroup)}, "brokerGroup": {m.BrokerGroup},
			"sequence": {strconv.FormatInt(m.Sequence, 10)}, "id": {id}}.Encode()
	}
	return p.List, ""
}

func (s *Server) messagesPage(w http.ResponseWriter, r *http.Request) {
	v, status := s.search(r, false)
	s.render(w, r, status, "messages", v)
}

func (s *Server) deadPage(w http.ResponseWriter, r *http.Request) {
	v, status := s.search(r, true)
	s.render(w, r, status, "dead", v)
}

// detailView is one message: what the backup stored and its consume
// records, drawn as a timeline.
type detailView struct {
	Subject, ID, BrokerGroup string
	Sequence                 int64
	// RetryOf and RetryGroup are set when the page shows a retry copy
	// (Subject %RETRY%<RetryOf>%<RetryGroup>): its records are among its
	// message's retry records.
	RetryOf, RetryGroup string
	Fields              []field
	DetailErr           string
	Records             []backupRecord
	RecordsErr          string
	Timeline            template.HTML
}

type field struct{ Name, Value string }

func (s *Server) detailPage(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	v := detailView{Subject: f.Get("subject"), ID: f.Get("id"), BrokerGroup: f.Get("brokerGroup")}
	seq, err := strconv.ParseInt(f.Get("sequence"), 10, 64)
	if v.Subject == "" || v.BrokerGroup == "" || err != nil || seq < 0 {
		s.render(w, r, http.StatusBadRequest, "error", errorPage{Title: "Bad request", Message: "A message is named by subject, brokerGroup and sequence (a number ≥ 0), e.g. /messages/detail?subject=S&brokerGroup=G&sequence=12&id=ID."})
		return
	}
	v.Sequence = seq
	ctx, cancel := s.ctx(r)
	defer cancel()
	d, err := s.src.backup.Detail(ctx, v.Subject, v.BrokerGroup, seq)
	if err != nil {
		v.DetailErr = err.Error()
	}
	for k, val := range d {
		v.Fields = append(v.Fields, field{k, fieldText(k, val)})
	}
	sort.Slice(v.Fields, func(i, j int) bool { return v.Fields[i].Name < v.Fields[j].Name })
	if orig, group, ok := retryCopy(v.Subject); ok {
		v.RetryOf, v.RetryGroup = orig, group
		v.Records, v.RecordsErr = s.retryCopyRecords(ctx, v)
	} else {
		v.Records, v.RecordsErr = s.messageRecords(ctx, v)
	}
	sort.SliceStable(v.Records, func(i, j int) bool { return v.Records[i].Timestamp.Before(v.Records[j].Timestamp.Time) })
	v.Timeline = timelineSVG(v.Records)
	s.render(w, r, http.StatusOK, "detail", v)
}

// messageRecords are a message's records of every kind; each retry record
// links to its retry copy's detail (the copy's own log numbers it, in the
// broker group the record names).
func (s *Server) messageRecords(ctx context.Context, v detailView) ([]backupRecord, string) {
	var out []backupRecord
	for code := 0; code <= 2; code++ {
		recs, err := s.src.backup.Records(ctx, v.Subject, v.ID, v.BrokerGroup, v.Sequence, code)
		if err != nil {
			return out, err.Error()
		}
		for i := range recs {
			recs[i].Type = code
			if r := &recs[i]; code == 1 && r.BrokerGroup != "" && r.ConsumerGroup != "" {
				r.DetailURL = "/messages/detail?" + url.Values{"subject": {protocol.RetrySubject(v.Subject, r.ConsumerGroup)}, "brokerGroup": {r.BrokerGroup},
					"sequence": {strconv.FormatInt(r.Sequence, 10)}, "id": {v.ID}}.Encode()
			}
		}
		out = append(out, recs...)
	}
	return out, ""
}

// retryCopyRecords are a retry copy's own records: its message's retry
// records of the copy's group, broker group and sequence (the backup keys
// them under the original subject and the message id).
func (s *Server) retryCopyRecords(ctx context.Context, v detailView) ([]backupRecord, string) {
	if v.ID == "" {
		return nil, "The records of a retry copy are found by its message id: open it from its message's page, or add &id=<message id> to this URL."
	}
	recs, err := s.src.backup.Records(ctx, v.RetryOf, v.ID, v.BrokerGroup, v.Sequence, 1)
	if err != nil {
		return nil, err.Error()
	}
	var out []backupRecord
	for _, r := range recs {
		if r.ConsumerGroup == v.RetryGroup && r.Sequence == v.Sequence && (r.BrokerGroup == "" || r.BrokerGroup == v.BrokerGroup) {
			r.Type = 1
			out = append(out, r)
		}
	}
	return out, ""
}

// retryCopy splits a retry copy's subject %RETRY%<subject>%<group>; ok is
// false for any other subject.
func retryCopy(subject string) (orig, group string, ok bool) {
	rest, ok := strings.CutPrefix(subject, protocol.RetryPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '%')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// fieldText shows a detail field: numbers as written (not 1.79e+12),
// epoch milliseconds of a *time field also as a UTC time, objects as JSON.
func fieldText(name string, v any) string {
	switch x := v.(type) {
	case float64:
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if strings.Contains(strings.ToLower(name), "time") && x > 1e12 && x < 1e14 {
			s += " (" + time.UnixMilli(int64(x)).UTC().Format("2006-01-02 15:04:05.000") + " UTC)"
		}
		return s
	case string:
		return x
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
