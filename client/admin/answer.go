package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Error is the metaserver's refusal of an action: an ActionResult with
// status -1, an answer with an "error" field, or a plain-text answer (an
// unknown or missing action). Message is the metaserver's text verbatim —
// it says what is wrong and what to do — and Data what came with it (the
// per-subject failures of RemoveSubjectBrokerGroup, the existing subject of
// AddNewSubject).
type Error struct {
	Action  string
	Message string
	Data    json.RawMessage
}

func (e *Error) Error() string { return fmt.Sprintf("metaserver refused %s: %s", e.Action, e.Message) }

// Do posts action with params and decodes the answer's data into out (nil:
// ignore it). It returns the message of a successful answer — "" or a note
// such as "warning: …" or "already registered: …" — or an *Error when the
// metaserver refused, or Post's error when no answer came. The typed
// methods are Do with QMQ's parameter names; Do is for the actions and
// parameters they do not cover.
func (c *Client) Do(ctx context.Context, action string, params url.Values, out any) (string, error) {
	form := url.Values{}
	for k, vs := range params {
		form[k] = vs
	}
	form.Set("action", action)
	body, err := c.Post(ctx, form)
	if err != nil {
		return "", fmt.Errorf("%s: %w", action, err)
	}
	return decodeAnswer(action, body, out)
}

// decodeAnswer reads the three shapes the metaserver answers with: QMQ's
// ActionResult ({"status","message","data"}), a bare value (a list, a
// subject route) and the {"error", "data"} of the subject actions.
func decodeAnswer(action, body string, out any) (string, error) {
	switch {
	case strings.HasPrefix(body, "["):
		return "", decodeData(action, json.RawMessage(body), out)
	case !strings.HasPrefix(body, "{"):
		return "", &Error{Action: action, Message: body}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil {
		return "", fmt.Errorf("%s: the metaserver's answer is not JSON: %w: %.200s", action, err, body)
	}
	_, hasStatus := fields["status"]
	_, hasData := fields["data"]
	if raw, ok := fields["error"]; ok {
		return "", &Error{Action: action, Message: jsonText(raw), Data: fields["data"]}
	}
	if !hasStatus && !hasData {
		return "", decodeData(action, json.RawMessage(body), out) // the value itself
	}
	var res struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return "", fmt.Errorf("%s: unexpected answer: %w: %.200s", action, err, body)
	}
	if res.Status != 0 {
		return "", &Error{Action: action, Message: res.Message, Data: fields["data"]}
	}
	return res.Message, decodeData(action, fields["data"], out)
}

func decodeData(action string, data json.RawMessage, out any) error {
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: cannot read the answer's data as %T: %w: %.200s", action, out, err, data)
	}
	return nil
}

// jsonText is a JSON string's text, or the raw JSON of anything else.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
