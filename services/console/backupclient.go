package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBackupAnswer bounds what is read of one backup answer.
const maxBackupAnswer = 8 << 20

// backupClient speaks the backup service's HTTP API (QMQ's backup
// endpoints: /api/message, /api/message/dead, /api/message/detail,
// /api/message/records, and a resend POST).
type backupClient struct {
	addrs      []string
	resendPath string
	hc         *http.Client
}

// errBackupNotConfigured: no console.backup.http.
var errBackupNotConfigured = errors.New("backup not configured: set console.backup.http in console.properties to the backup service's HTTP address")

// backupQuery is QMQ's backupQuery parameter.
type backupQuery struct {
	Subject       string `json:"subject"`
	MessageID     string `json:"messageId,omitempty"`
	ConsumerGroup string `json:"consumerGroup,omitempty"`
	BrokerGroup   string `json:"brokerGroup,omitempty"`
	Sequence      *int64 `json:"sequence,omitempty"`
	Begin         int64  `json:"msgCreateTimeBegin,omitempty"`
	End           int64  `json:"msgCreateTimeEnd,omitempty"`
	Len           int    `json:"len,omitempty"`
	Start         string `json:"start,omitempty"`
}

// backupMessage is one entry of a message or dead-letter list.
type backupMessage struct {
	BrokerGroup   string   `json:"brokerGroup"`
	Sequence      int64    `json:"sequence"`
	MessageID     string   `json:"messageId"`
	Subject       string   `json:"subject"`
	ConsumerGroup string   `json:"consumerGroup"`
	CreateTime    flexTime `json:"createTime"`
	// DetailURL, set by the search page, links a retry copy to its detail.
	DetailURL string `json:"-"`
}

type backupPage struct {
	List []backupMessage `json:"list"`
	Next flexString      `json:"next"`
}

// backupRecord is one consume record (action 0 pull, 1 ack).
type backupRecord struct {
	ConsumerGroup string   `json:"consumerGroup"`
	Action        int      `json:"action"`
	Type          int      `json:"type"`
	Timestamp     flexTime `json:"timestamp"`
	ConsumerID    string   `json:"consumerId"`
	Sequence      int64    `json:"sequence"`
	// BrokerGroup is where the record's message is stored (the backup's
	// own field): a retry record's names its retry copy.
	BrokerGroup string `json:"brokerGroup"`
	// DetailURL, set by the detail page, links a retry record to its retry
	// copy's detail.
	DetailURL string `json:"-"`
}

// flexTime decodes epoch milliseconds, or an RFC 3339 string.
type flexTime struct{ time.Time }

func (t *flexTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		t.Time = time.UnixMilli(ms)
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q is neither epoch milliseconds nor RFC 3339", s)
	}
	t.Time = v
	return nil
}

// flexString decodes a string or a number (a page's next cursor).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	*f = flexString(s)
	return nil
}

// get GETs path with params from the first backup that answers it. A
// backup keeps one broker group, so a 404 from one (not its group's
// message) sends the question on to the next; other refusals (a bad query)
// would be the same everywhere and end the search.
func (c *backupClient) get(ctx context.Context, path string, params url.Values, out any) error {
	if len(c.addrs) == 0 {
		return errBackupNotConfigured
	}
	var errs []error
	var notFound error
	for _, a := range c.addrs {
		err := c.getFrom(ctx, a, path, params, out)
		if err == nil {
			return nil
		}
		var refused *backupRefusal
		if errors.As(err, &refused) {
			if refused.Status != http.StatusNotFound {
				return err
			}
			notFound = err
			continue
		}
		errs = append(errs, err)
	}
	if notFound != nil {
		return notFound
	}
	return fmt.Errorf("backup not reachable at %s: %w", strings.Join(c.addrs, ", "), errors.Join(errs...))
}

// getFrom GETs path with params from the backup at addr.
func (c *backupClient) getFrom(ctx context.Context, addr, path string, params url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

// backupRefusal is a 4xx/5xx answer of the backup, with its text.
type backupRefusal struct {
	Status int
	Body   string
}

func (e *backupRefusal) Error() string {
	return fmt.Sprintf("the backup answered HTTP %d: %s", e.Status, e.Body)
}

func (c *backupClient) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBackupAnswer))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", req.URL.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &backupRefusal{Status: resp.StatusCode, Body: clip(strings.TrimSpace(string(body)), 300)}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = body
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the backup at %s answered what is not the expected JSON (%v): %s", req.URL.Host, err, clip(string(body), 200))
	}
	return nil
}

func (c *backupClient) query(q backupQuery) url.Values {
	b, _ := json.Marshal(q)
	return url.Values{"backupQuery": {string(b)}}
}

// Messages lists messages (dead=false) or dead letters of a query.
func (c *backupClient) Messages(ctx context.Context, q backupQuery, dead bool) (backupPage, error) {
	path := "/api/message"
	if dead {
		path = "/api/message/dead"
	}
	if len(c.addrs) > 1 {
		return c.messagesOfAll(ctx, path, q)
	}
	var p backupPage
	err := c.get(ctx, path, c.query(q), &p)
	return p, err
}

// Retries lists a message's retry copies (the backup's /api/message/retry),
// from every backup: a copy is stored in whichever broker group took it.
func (c *backupClient) Retries(ctx context.Context, subject, messageID string) (backupPage, error) {
	const path = "/api/message/retry"
	q := backupQuery{Subject: subject, MessageID: messageID, Len: pageLen}
	if len(c.addrs) > 1 {
		return c.messagesOfAll(ctx, path, q)
	}
	var p backupPage
	err := c.get(ctx, path, c.query(q), &p)
	return p, err
}

// Detail returns one message's stored fields, as the backup gives them.
func (c *backupClient) Detail(ctx context.Context, subject, brokerGroup string, seq int64) (map[string]any, error) {
	var out map[string]any
	err := c.get(ctx, "/api/message/detail", c.query(backupQuery{Subject: subject, BrokerGroup: brokerGroup, Sequence: &seq}), &out)
	return out, err
}

// Records returns a message's consume records of kind recordCode (0
// normal, 1 retry, 2 dead).
func (c *backupClient) Records(ctx context.Context, subject, messageID, brokerGroup string, seq int64, recordCode int) ([]backupRecord, error) {
	q, _ := json.Marshal(map[string]any{"subject": subject, "messageId": messageID, "brokerGroup": brokerGroup, "sequence": seq, "recordCode": recordCode})
	var out struct {
		Records []backupRecord `json:"records"`
	}
	err := c.get(ctx, "/api/message/records", url.Values{"recordQuery": {string(q)}}, &out)
	return out.Records, err
}

// Resend asks the backup to send a dead letter again; token is forwarded.
// Each backup keeps one broker group: one that answers 404 (not its
// group's dead letter, nothing done) passes the request to the next.
func (c *backupClient) Resend(ctx context.Context, token string, form url.Values) (string, error) {
	if len(c.addrs) == 0 {
		return "", errBackupNotConfigured
	}
	var raw []byte
	var err error
	for _, a := range c.addrs {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a+c.resendPath, bytes.NewBufferString(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Api-Token", token)
		if err = c.do(req, &raw); err == nil {
			break
		}
		err = fmt.Errorf("resend through the backup at %s%s: %w", a, c.resendPath, err)
		var refused *backupRefusal
		if !errors.As(err, &refused) || refused.Status != http.StatusNotFound {
			return "", err
		}
	}
	if err != nil {
		return "", err
	}
	// The backup's answer: {"resent":[{…,"newMessageId":…}],"failed":[…]}.
	var ans struct {
		Resent []struct {
			NewMessageID string `json:"newMessageId"`
		} `json:"resent"`
	}
	if json.Unmarshal(raw, &ans) == nil && len(ans.Resent) > 0 {
		var ids []string
		for _, r := range ans.Resent {
			ids = append(ids, r.NewMessageID)
		}
		return "new message id " + strings.Join(ids, ", "), nil
	}
	return clip(string(raw), 300), nil
}

// clip shortens s for display.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
