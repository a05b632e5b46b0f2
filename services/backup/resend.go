package backup

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/protocol"
)

// Resend properties (ours): a resent dead letter is a new message of the
// original subject, with a new id; these say where it came from.
const (
	PropResendOf   = "backup_resendOf"   // the dead letter's message id
	PropResendFrom = "backup_resendFrom" // <brokerGroup>:<sequence> of the dead letter
)

// maxResend bounds the dead letters one request resends.
const maxResend = 10_000

// resendResult is the answer of POST /api/message/dead/resend.
type resendResult struct {
	Resent []resent `json:"resent"`
	Failed []resent `json:"failed,omitempty"`
	// More: the request's limit stopped it before the last dead letter.
	More bool `json:"more,omitempty"`
}

type resent struct {
	BrokerGroup  string `json:"brokerGroup"`
	Sequence     int64  `json:"sequence"`
	MessageID    string `json:"messageId"`              // the dead letter's
	NewMessageID string `json:"newMessageId,omitempty"` // the message sent
	Error        string `json:"error,omitempty"`
}

// resender sends dead letters' content back to their subjects through the
// Go client; its producer is made at the first resend and closed with the
// server.
type resender struct {
	mu sync.Mutex
	p  *client.Producer
}

func (rs *resender) producer(ctx context.Context, metaEndpoint string) (*client.Producer, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.p != nil {
		return rs.p, nil
	}
	p, err := client.NewProducer(ctx, metaEndpoint, client.WithAppCode("qmq-backup"))
	if err != nil {
		return nil, err
	}
	rs.p = p
	return p, nil
}

func (rs *resender) close() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = rs.p.Close(ctx)
		cancel()
		rs.p = nil
	}
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

// resend serves POST /api/message/dead/resend (ours): form fields subject
// (required) and either brokerGroup and sequence (one dead letter) or
// consumerGroup (all of that group's dead letters of subject, up to limit,
// default and most 10000); header X-Api-Token: backup.admin.token.
func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "resend takes POST (it sends messages)", http.StatusMethodNotAllowed)
		return
	}
	if s.settings.AdminToken == "" {
		http.Error(w, "resending dead letters is off: set backup.admin.token (or backup.admin.token.file) in "+FileBackup, http.StatusForbidden)
		return
	}
	got := r.Header.Get("X-Api-Token")
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.settings.AdminToken)) != 1 {
		http.Error(w, "X-Api-Token is missing or wrong: send backup.admin.token", http.StatusForbidden)
		return
	}
	if !httpguard.ParseForm(w, r) {
		return
	}
	subject := strings.TrimSpace(r.Form.Get("subject"))
	if subject == "" {
		badRequest(w, "subject is required: the dead letters' original subject (not %%DEAD_RETRY%%…)")
		return
	}
	bg, seqStr, group := r.Form.Get("brokerGroup"), r.Form.Get("sequence"), r.Form.Get("consumerGroup")
	limit := maxResend
	if v := r.Form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxResend {
			badRequest(w, "limit %q: want 1..%d", v, maxResend)
			return
		}
		limit = n
	}
	var letters []backup.Message
	var more bool
	switch {
	case bg != "" || seqStr != "":
		seq, err := strconv.ParseInt(seqStr, 10, 64)
		if bg == "" || err != nil || seq < 0 {
			badRequest(w, "one dead letter needs brokerGroup and sequence (a number ≥ 0), as /api/message/dead lists them; got brokerGroup=%q sequence=%q", bg, seqStr)
			return
		}
		m, err := s.findDeadLetter(r.Context(), subject, group, bg, seq)
		if err != nil {
			storeError(w, err)
			return
		}
		letters = []backup.Message{m}
	case group != "":
		var err error
		letters, more, err = s.allDeadLetters(r.Context(), subject, group, limit)
		if err != nil {
			storeError(w, err)
			return
		}
	default:
		badRequest(w, "say which dead letters: brokerGroup and sequence (one), or consumerGroup (all of subject %s for that group)", subject)
		return
	}
	p, err := s.resender.producer(r.Context(), s.settings.MetaEndpoint)
	if err != nil {
		http.Error(w, fmt.Sprintf("cannot start a producer to resend (meta.server.endpoint %s): %v", s.settings.MetaEndpoint, err), http.StatusServiceUnavailable)
		return
	}
	res := resendResult{Resent: []resent{}, More: more}
	for _, d := range letters {
		item := resent{BrokerGroup: d.BrokerGroup, Sequence: d.Sequence, MessageID: d.MessageID}
		msg, err := rebuild(p, subject, d)
		if err == nil {
			sctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			err = p.Send(sctx, msg)
			cancel()
		}
		if err != nil {
			item.Error = err.Error()
			res.Failed = append(res.Failed, item)
			continue
		}
		item.NewMessageID = msg.ID()
		res.Resent = append(res.Resent, item)
		s.log.Info("dead letter resent", "subject", subject, "from", fmt.Sprintf("%s:%d", d.BrokerGroup, d.Sequence), "dead_id", d.MessageID, "new_id", msg.ID())
	}
	w.Header().Set("Content-Type", "application/json")
	if len(res.Failed) > 0 {
		w.WriteHeader(http.StatusBadGateway)
	}
	_ = json.NewEncoder(w).Encode(res)
}

// findDeadLetter looks one dead letter up: group's, or when group is ""
// the one dead letter at bg:seq among the subject's (each group's dead
// letters are numbered in their own log, so several groups may have one
// there: then the caller must say which).
func (s *Server) findDeadLetter(ctx context.Context, subject, group, bg string, seq int64) (backup.Message, error) {
	if group == "" {
		q := backup.MessageQuery{Subject: subject, Len: backup.MaxPageLen}
		var groups []string
		for {
			page, err := s.store.FindDeadLetters(ctx, q)
			if err != nil {
				return backup.Message{}, err
			}
			for _, m := range page.Messages {
				if m.BrokerGroup == bg && m.Sequence == seq {
					groups = append(groups, m.ConsumerGroup)
				}
			}
			if page.Next == "" {
				break
			}
			q.Start = page.Next
		}
		switch len(groups) {
		case 0:
			return backup.Message{}, fmt.Errorf("%w: no dead letter at %s:%d of subject %s in the last 30 days", backup.ErrNotFound, bg, seq, subject)
		case 1:
			group = groups[0]
		default:
			slices.Sort(groups) // the store's order follows the dictionary's random ids
			return backup.Message{}, fmt.Errorf("%w: consumer groups %s each have a dead letter at %s:%d of subject %s; give consumerGroup", backup.ErrBadQuery, strings.Join(groups, ", "), bg, seq, subject)
		}
	}
	return s.store.FindMessage(ctx, backup.MessageRef{Subject: subject, BrokerGroup: bg, Sequence: seq, ConsumerGroup: group})
}

func (s *Server) allDeadLetters(ctx context.Context, subject, group string, limit int) ([]backup.Message, bool, error) {
	var out []backup.Message
	// The store's default window (QMQ's: the last 30 days).
	q := backup.MessageQuery{Subject: subject, ConsumerGroup: group, Len: min(limit, backup.MaxPageLen)}
	for {
		page, err := s.store.FindDeadLetters(ctx, q)
		if err != nil {
			return nil, false, err
		}
		for _, m := range page.Messages {
			if len(out) == limit {
				return out, true, nil
			}
			if len(m.Content) == 0 { // a page holds the index only
				full, err := s.store.FindMessage(ctx, m.Ref())
				if err != nil {
					return nil, false, err
				}
				m = full
			}
			out = append(out, m)
		}
		if page.Next == "" {
			return out, false, nil
		}
		q.Start = page.Next
	}
}

// rebuild makes the message to resend from a dead letter's stored content:
// its tags and properties (but the client's own qmq_* ones), a new id.
func rebuild(p *client.Producer, subject string, d backup.Message) (*client.Message, error) {
	if len(d.Content) == 0 {
		return nil, fmt.Errorf("the store has no content for dead letter %s:%d", d.BrokerGroup, d.Sequence)
	}
	pm, err := protocol.DecodePayload(d.Content)
	if err != nil {
		return nil, fmt.Errorf("dead letter %s:%d: stored content unreadable: %w", d.BrokerGroup, d.Sequence, err)
	}
	m := p.NewMessage(subject)
	for _, a := range pm.Attrs {
		if strings.HasPrefix(a.Key, "qmq_") {
			continue
		}
		m.SetProperty(a.Key, a.Value)
	}
	for _, t := range pm.Tags {
		m.AddTag(t)
	}
	m.SetProperty(PropResendOf, pm.MessageID)
	m.SetProperty(PropResendFrom, d.BrokerGroup+":"+strconv.FormatInt(d.Sequence, 10))
	return m, nil
}

func storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, backup.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, backup.ErrBadQuery):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, backup.ErrUnavailable):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
