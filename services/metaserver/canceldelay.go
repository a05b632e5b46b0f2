package metaserver

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/protocol"
	namerule "github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/delay/delayadmin"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// readDelayAdminSecret reads delay.admin.secret or delay.admin.secret.file
// of metaserver.properties (ours): the key CancelDelay signs with.
func readDelayAdminSecret(r *conf.Reader) (delayadmin.Secret, error) {
	return delayadmin.LoadSecret(r.String("delay.admin.secret", ""), r.String("delay.admin.secret.file", ""))
}

// cancelResult is CancelDelay's data: which delay group withdrew the message.
type cancelResult struct {
	Subject     string `json:"subject"`
	MessageID   string `json:"messageId"`
	Cancelled   bool   `json:"cancelled"`
	BrokerGroup string `json:"brokerGroup,omitempty"` // the delay group that held it
}

// cancelDelay is the CancelDelay action (ours; qmq tools CancelDelay):
// withdraw a scheduled delay message that is not delivered yet. The
// operator's API token is checked like every action's; the metaserver then
// asks every delay master over broker.port with a request signed with
// delay.admin.secret (package delayadmin): that port is open to QMQ's
// unauthenticated clients, so the delay server trusts only the signature.
// A producer may have sent the message to any delay group, so all are asked.
func (s *Server) cancelDelay(ctx context.Context, p params) any {
	subject, id := p.name("subject"), p.str("messageId")
	if msg := badName("subject", subject, namerule.Subject, false); msg != "" {
		return fail("%s", msg)
	}
	if id == "" {
		return fail("please provide the message id (--messageId, the id the producer gave or printed)")
	}
	if !s.settings.DelayAdminSecret.Set() {
		return fail("cancel refused: this metaserver has no delay.admin.secret (or delay.admin.secret.file) in %s; set the same secret there and in every delay server's delay.properties", FileMetaserver)
	}
	var masters []store.Broker
	for _, b := range s.cache.get().brokers {
		if b.Role == store.RoleDelayMaster {
			masters = append(masters, b)
		}
	}
	if len(masters) == 0 {
		return fail("cancel failed: no delay group is registered (qmq tools AddBroker --role=5)")
	}
	res := cancelResult{Subject: subject, MessageID: id}
	var problems []string
	for _, b := range masters {
		cancelled, err := s.cancelOn(ctx, b, subject, id)
		if err != nil {
			problems = append(problems, fmt.Sprintf("delay group %s (master %s:%d): %v", b.Group, b.IP, b.ServePort, err))
			continue
		}
		if cancelled {
			res.Cancelled, res.BrokerGroup = true, b.Group
			break
		}
	}
	switch {
	case res.Cancelled:
		return actionResult{Status: 0, Message: fmt.Sprintf("cancelled: %s/%s will not be delivered (delay group %s)", subject, id, res.BrokerGroup), Data: res}
	case len(problems) > 0:
		return fail("cancel of %s/%s not confirmed: %s; the groups that answered do not hold it scheduled. Fix the problem and run the command again (a second cancel is harmless)",
			subject, id, strings.Join(problems, "; "))
	default:
		return actionResult{Status: 0, Message: fmt.Sprintf("unknown or already delivered: no delay group holds %s/%s scheduled (it was delivered, is being delivered, was cancelled before, or never existed)", subject, id), Data: res}
	}
}

// cancelOn sends one signed CANCEL_DELAY to a delay master.
func (s *Server) cancelOn(ctx context.Context, b store.Broker, subject, id string) (bool, error) {
	req, err := delayadmin.Sign(s.settings.DelayAdminSecret, b.Group, subject, id, time.Now())
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // Cancel scans the schedule on disk
	defer cancel()
	c, err := remoting.Dial(ctx, net.JoinHostPort(b.IP, strconv.Itoa(b.ServePort)), s.settings.MaxFrameSize)
	if err != nil {
		return false, err
	}
	defer c.Close()
	resp, err := c.Call(ctx, protocol.CodeCancelDelay, req.Append(nil))
	if err != nil {
		return false, err
	}
	switch resp.Header.Code {
	case protocol.CodeSuccess:
		d := protocol.NewDecoder(resp.Body)
		answer := d.Uint8()
		if d.Err() != nil {
			return false, fmt.Errorf("malformed CANCEL_DELAY answer: %w", d.Err())
		}
		return answer == delayadmin.Cancelled, nil
	case protocol.CodeUnknownCode:
		return false, fmt.Errorf("the delay server does not support CANCEL_DELAY (QMQ's Java delay server, or an older qmq-go)")
	default:
		return false, fmt.Errorf("%s: %s", protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
}
