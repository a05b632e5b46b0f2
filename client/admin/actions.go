package admin

import (
	"context"
	"net/url"
	"strconv"
)

// The management actions, by the names the metaserver answers to (QMQ's;
// `qmq tools` calls the two read-only ones MarkReadonly and UnMarkReadonly).
const (
	ActionAddBroker                = "AddBroker"
	ActionReplaceBroker            = "ReplaceBroker"
	ActionSwapMasterSlave          = "SwapMasterSlave"
	ActionListBrokers              = "ListBrokers"
	ActionListBrokerGroups         = "ListBrokerGroups"
	ActionListSubjectRoutes        = "ListSubjectRoutes"
	ActionAddSubjectBrokerGroup    = "AddSubjectBrokerGroup"
	ActionRemoveSubjectBrokerGroup = "RemoveSubjectBrokerGroup"
	ActionAddNewSubject            = "AddNewSubject"
	ActionExtendSubjectRoute       = "ExtendSubjectRoute"
	ActionAddDB                    = "AddDb"
	ActionMarkReadonly             = "MarkReadonlyBrokerGroup"
	ActionUnMarkReadonly           = "UnMarkReadonlyBrokerGroup"
	ActionResetOffset              = "ResetOffset"
	ActionCancelDelay              = "CancelDelay" // ours: withdraw a scheduled delay message
)

func (b BrokerSpec) form() url.Values {
	v := url.Values{
		"brokerGroup": {b.Group},
		"role":        {strconv.Itoa(int(b.Role))},
		"hostname":    {b.Hostname},
		"ip":          {b.IP},
		"servePort":   {strconv.Itoa(b.ServePort)},
		"syncPort":    {strconv.Itoa(b.SyncPort)},
	}
	if b.IfAbsent {
		v.Set("ifAbsent", "true")
	}
	return v
}

// AddBroker registers a broker; it must be registered before it starts.
// The message is the metaserver's note on success: a warning (a loopback
// IP) or, with IfAbsent, that the broker was already registered.
func (c *Client) AddBroker(ctx context.Context, b BrokerSpec) (Broker, string, error) {
	var out Broker
	msg, err := c.Do(ctx, ActionAddBroker, b.form(), &out)
	return out, msg, err
}

// ReplaceBroker puts b in the place of its group's member of b.Role (a
// broker moved to another machine) and returns the row it replaced.
func (c *Client) ReplaceBroker(ctx context.Context, b BrokerSpec) (Broker, error) {
	var out Broker
	_, err := c.Do(ctx, ActionReplaceBroker, b.form(), &out)
	return out, err
}

// SwapMasterSlave (ours) is the manual failover: the group's slave becomes
// its master and the master its slave, atomically. Stop both brokers
// first and start them after; the group is NRW until the new master is
// online.
func (c *Client) SwapMasterSlave(ctx context.Context, group string) (Swap, error) {
	var out Swap
	_, err := c.Do(ctx, ActionSwapMasterSlave, url.Values{"brokerGroup": {group}}, &out)
	return out, err
}

// ListBrokers lists the broker table, or one group's rows when group is
// not "".
func (c *Client) ListBrokers(ctx context.Context, group string) ([]Broker, error) {
	params := url.Values{}
	if group != "" {
		params.Set("brokerGroup", group)
	}
	var out []Broker
	_, err := c.Do(ctx, ActionListBrokers, params, &out)
	return out, err
}

// ListBrokerGroups lists every broker group and its state.
func (c *Client) ListBrokerGroups(ctx context.Context) ([]BrokerGroup, error) {
	var out []BrokerGroup
	_, err := c.Do(ctx, ActionListBrokerGroups, nil, &out)
	return out, err
}

// ListSubjectRoutes lists every subject's route.
func (c *Client) ListSubjectRoutes(ctx context.Context) ([]SubjectRoute, error) {
	var out []SubjectRoute
	_, err := c.Do(ctx, ActionListSubjectRoutes, nil, &out)
	return out, err
}

// AddSubjectBrokerGroup adds group to subject's route and returns the
// route. The subject must have one already (its first producer or consumer
// made it) and the group must have been online.
func (c *Client) AddSubjectBrokerGroup(ctx context.Context, subject, group string) (SubjectRoute, error) {
	var out SubjectRoute
	_, err := c.Do(ctx, ActionAddSubjectBrokerGroup, url.Values{"subject": {subject}, "brokerGroup": {group}}, &out)
	return out, err
}

// RemoveSubjectBrokerGroup removes group from subject's route, or from
// every route with subject "*". A subject's last group is never removed.
func (c *Client) RemoveSubjectBrokerGroup(ctx context.Context, subject, group string) error {
	_, err := c.Do(ctx, ActionRemoveSubjectBrokerGroup, url.Values{"subject": {subject}, "brokerGroup": {group}}, nil)
	return err
}

// AddNewSubject declares subject with a routing tag: groups whose
// broker_group.tag is tag serve it.
func (c *Client) AddNewSubject(ctx context.Context, subject, tag string) (SubjectInfo, error) {
	var out SubjectInfo
	_, err := c.Do(ctx, ActionAddNewSubject, url.Values{"subject": {subject}, "tag": {tag}}, &out)
	return out, err
}

// ExtendSubjectRoute adds newGroup to every route of relatedSubject ("*":
// all subjects) that contains relatedGroup, and returns the metaserver's
// account of how many it updated.
func (c *Client) ExtendSubjectRoute(ctx context.Context, relatedSubject, relatedGroup, newGroup string) (string, error) {
	var out string
	_, err := c.Do(ctx, ActionExtendSubjectRoute, url.Values{"relatedSubject": {relatedSubject},
		"relatedBrokerGroup": {relatedGroup}, "newBrokerGroup": {newGroup}}, &out)
	return out, err
}

// MarkReadonly (MarkReadonlyBrokerGroup) stops producers from being sent
// to group for subject, or for every subject with "*"; consumers still
// drain it.
func (c *Client) MarkReadonly(ctx context.Context, group, subject string) error {
	_, err := c.Do(ctx, ActionMarkReadonly, url.Values{"brokerGroup": {group}, "subject": {subject}}, nil)
	return err
}

// UnMarkReadonly (UnMarkReadonlyBrokerGroup) undoes MarkReadonly for the
// same group and subject.
func (c *Client) UnMarkReadonly(ctx context.Context, group, subject string) error {
	_, err := c.Do(ctx, ActionUnMarkReadonly, url.Values{"brokerGroup": {group}, "subject": {subject}}, nil)
	return err
}

// ResetOffset moves a consumer group of a subject, in every broker group
// of the subject's route, to the latest or earliest message or (ours) to
// the first stored at or after r.At.
func (c *Client) ResetOffset(ctx context.Context, r ResetSpec) (ResetResult, error) {
	params := url.Values{"subject": {r.Subject}, "group": {r.Group}, "code": {strconv.Itoa(int(r.Code))}}
	if !r.At.IsZero() {
		params.Set("timestamp", strconv.FormatInt(r.At.UnixMilli(), 10))
	}
	var res ResetResult
	var data any = &res.Groups
	if r.Code != ResetTimestamp {
		data = nil // "success"
	}
	msg, err := c.Do(ctx, ActionResetOffset, params, data)
	res.Message = msg
	return res, err
}

// Cancellation is CancelDelay's answer.
type Cancellation struct {
	Subject     string `json:"subject"`
	MessageID   string `json:"messageId"`
	Cancelled   bool   `json:"cancelled"`             // false: unknown or already delivered
	BrokerGroup string `json:"brokerGroup,omitempty"` // the delay group that held it
	Message     string `json:"-"`                     // the metaserver's sentence
}

// CancelDelay (ours) withdraws a scheduled delay message before it is due.
// Cancelled is false when no delay group holds it scheduled: it was
// delivered (or is being delivered), was cancelled before, or never existed.
func (c *Client) CancelDelay(ctx context.Context, subject, messageID string) (Cancellation, error) {
	var out Cancellation
	msg, err := c.Do(ctx, ActionCancelDelay, url.Values{"subject": {subject}, "messageId": {messageID}}, &out)
	out.Message = msg
	return out, err
}
