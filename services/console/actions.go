package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/qmq-go/qmq/client/admin"
)

// The writes. Each checks its input (400 naming the field), then acts with
// the caller's token, so the metaserver authorises and logs it too.

// status is the HTTP status for a failed action: the metaserver or backup
// refusing is 409 (it understood and said no), not reaching it 502.
func status(err error) int {
	var refused *admin.Error
	var backup *backupRefusal
	if errors.As(err, &refused) || errors.As(err, &backup) {
		return http.StatusConflict
	}
	return http.StatusBadGateway
}

func required(r *http.Request, names ...string) error {
	var missing []string
	for _, n := range names {
		if strings.TrimSpace(r.PostFormValue(n)) == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

func (s *Server) resetOffset(r *http.Request, _, token string) (string, int, error) {
	if err := required(r, "subject", "group", "to"); err != nil {
		return "", http.StatusBadRequest, err
	}
	spec := admin.ResetSpec{Subject: r.PostFormValue("subject"), Group: r.PostFormValue("group")}
	switch to := r.PostFormValue("to"); to {
	case "earliest":
		spec.Code = admin.ResetEarliest
	case "latest":
		spec.Code = admin.ResetLatest
	case "time":
		at, err := parseWhen(r.PostFormValue("at"))
		if err != nil || at.IsZero() {
			return "", http.StatusBadRequest, fmt.Errorf("reset to a time needs the time (at): %v", err)
		}
		spec.Code, spec.At = admin.ResetTimestamp, at
	default:
		return "", http.StatusBadRequest, fmt.Errorf("to=%q: want earliest, latest or time", to)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.src.meta(token).ResetOffset(ctx, spec)
	if err != nil {
		return "", status(err), fmt.Errorf("reset offset of %s/%s: %w", spec.Subject, spec.Group, err)
	}
	msg := fmt.Sprintf("Consumer group %s of %s reset to %s.", spec.Group, spec.Subject, r.PostFormValue("to"))
	if res.Message != "" {
		msg += " " + res.Message
	}
	for _, g := range res.Groups {
		msg += fmt.Sprintf("; broker group %s pulls sequence %d next", g.BrokerGroup, g.NextSequence)
	}
	return msg, 0, nil
}

func (s *Server) readonly(r *http.Request, _, token string) (string, int, error) {
	if err := required(r, "brokerGroup", "subject", "mark"); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("%w (subject * means every subject)", err)
	}
	group, subject := r.PostFormValue("brokerGroup"), r.PostFormValue("subject")
	mark, err := strconv.ParseBool(r.PostFormValue("mark"))
	if err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("mark=%q: want true or false", r.PostFormValue("mark"))
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	m := s.src.meta(token)
	if mark {
		err = m.MarkReadonly(ctx, group, subject)
	} else {
		err = m.UnMarkReadonly(ctx, group, subject)
	}
	if err != nil {
		return "", status(err), fmt.Errorf("readonly=%v for %s on broker group %s: %w", mark, subject, group, err)
	}
	if mark {
		return fmt.Sprintf("Broker group %s is read-only for %s: producers send elsewhere.", group, subject), 0, nil
	}
	return fmt.Sprintf("Broker group %s takes %s again.", group, subject), 0, nil
}

func (s *Server) forceOffline(r *http.Request, _, _ string) (string, int, error) {
	if err := required(r, "clientId", "subject", "group", "state"); err != nil {
		return "", http.StatusBadRequest, err
	}
	state := r.PostFormValue("state")
	if state != "0" && state != "1" {
		return "", http.StatusBadRequest, fmt.Errorf("state=%q: want 0 (online) or 1 (offline)", state)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if _, err := s.src.onOffline(ctx, r.PostFormValue("clientId"), r.PostFormValue("subject"), r.PostFormValue("group"), state); err != nil {
		return "", http.StatusBadGateway, err
	}
	word := map[string]string{"0": "online", "1": "offline"}[state]
	return fmt.Sprintf("Consumer %s of %s/%s forced %s.", r.PostFormValue("clientId"), r.PostFormValue("subject"), r.PostFormValue("group"), word), 0, nil
}

func (s *Server) resend(r *http.Request, _, token string) (string, int, error) {
	if err := required(r, "subject", "brokerGroup", "sequence"); err != nil {
		return "", http.StatusBadRequest, err
	}
	if _, err := strconv.ParseInt(r.PostFormValue("sequence"), 10, 64); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("sequence=%q is not a number", r.PostFormValue("sequence"))
	}
	form := url.Values{}
	for _, k := range []string{"subject", "brokerGroup", "sequence", "consumerGroup", "messageId"} {
		if v := r.PostFormValue(k); v != "" {
			form.Set(k, v)
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	if s.settings.BackupToken != "" {
		token = s.settings.BackupToken
	}
	ans, err := s.src.backup.Resend(ctx, token, form)
	if err != nil {
		return "", status(err), err
	}
	return fmt.Sprintf("Dead letter %s (%s sequence %s) sent again: %s", r.PostFormValue("messageId"), r.PostFormValue("brokerGroup"), r.PostFormValue("sequence"), ans), 0, nil
}
