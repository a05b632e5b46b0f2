package lease

import (
	"context"
	"errors"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// ErrUnsupported: the metaserver does not know BROKER_LEASE.
var ErrUnsupported = errors.New("the metaserver does not support BROKER_LEASE (a QMQ Java metaserver, or a qmq metaserver older than this server?): failover needs qmq-go's metaserver; upgrade it, or set failover.enable=false")

// Refused is the metaserver's refusal of a claim or a promotion, with its
// reason (protocol.LeaseRefused*).
type Refused struct {
	Reason uint8
	Msg    string
}

func (e *Refused) Error() string { return "BROKER_LEASE refused: " + e.Msg }

// IsHeld reports whether err refuses a lease because another member holds
// it and it has not expired: the caller may get it later.
func IsHeld(err error) bool {
	var r *Refused
	return errors.As(err, &r) && r.Reason == protocol.LeaseRefusedHeld
}

// IsRefused reports whether err is the metaserver's refusal of a lease or
// of a registration (not a failure to ask).
func IsRefused(err error) bool {
	if errors.As(err, new(*Refused)) {
		return true
	}
	var me *meta.Error
	return errors.As(err, &me) && me.Status == protocol.CodeBrokerReject
}

// Client calls BROKER_LEASE on a connection of its own to the metaserver
// (a registrar's belongs to its goroutine). It belongs to one goroutine at
// a time.
type Client struct {
	// Locate returns the metaserver's TCP address (meta.Locate, or one the
	// caller knows already).
	Locate func(ctx context.Context) (string, error)
	// DialFailed, if set, is told an address that could not be dialled
	// (the caller forgets it and locates the metaserver again).
	DialFailed func(addr string)

	conn *remoting.Client
}

// Call sends req and returns the metaserver's answer: a *Refused when it
// refuses, ErrUnsupported when it does not know BROKER_LEASE. The call is
// bounded by timeout; a failed one drops the connection for the next.
func (c *Client) Call(ctx context.Context, req protocol.LeaseRequest, timeout time.Duration) (protocol.LeaseResponse, error) {
	if c.conn == nil || c.conn.Err() != nil {
		c.Close()
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addr, err := c.Locate(dctx)
		if err != nil {
			return protocol.LeaseResponse{}, err
		}
		if c.conn, err = remoting.Dial(dctx, addr, 0); err != nil {
			if c.DialFailed != nil {
				c.DialFailed(addr)
			}
			return protocol.LeaseResponse{}, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.conn.Call(cctx, protocol.CodeBrokerLease, protocol.AppendLeaseRequest(nil, req))
	if err != nil {
		c.Close()
		return protocol.LeaseResponse{}, err
	}
	switch resp.Header.Code {
	case protocol.CodeSuccess:
		return protocol.DecodeLeaseResponse(resp.Body)
	case protocol.CodeUnknownCode:
		return protocol.LeaseResponse{}, ErrUnsupported
	case protocol.CodeBrokerReject:
		reason, msg := protocol.DecodeLeaseRefusal(resp.Body)
		return protocol.LeaseResponse{}, &Refused{Reason: reason, Msg: msg}
	}
	return protocol.LeaseResponse{}, &meta.Error{Request: "BROKER_LEASE", Status: resp.Header.Code, Message: protocol.DecodeErrorBody(resp.Body)}
}

// Close closes the connection (the next Call dials again).
func (c *Client) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}
