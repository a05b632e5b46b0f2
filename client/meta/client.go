package meta

import (
	"context"
	"fmt"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// Client is a connection to one metaserver.
type Client struct {
	addr string
	conn *remoting.Client
}

// Dial connects to the metaserver's TCP address (see Locate).
func Dial(ctx context.Context, addr string) (*Client, error) {
	c, err := remoting.Dial(ctx, addr, protocol.DefaultMaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("connect to metaserver %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: c}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call sends one request and turns a non-success answer into an error carrying the metaserver's message.
func (c *Client) call(ctx context.Context, code int16, body []byte) ([]byte, error) {
	resp, err := c.conn.Call(ctx, code, body)
	if err != nil {
		return nil, fmt.Errorf("%s to metaserver %s: %w", protocol.CodeName(code, false), c.addr, err)
	}
	if resp.Header.Code != protocol.CodeSuccess {
		msg := protocol.DecodeErrorBody(resp.Body)
		if msg == "" {
			msg = "no details given"
		}
		return nil, &Error{Request: protocol.CodeName(code, false), Status: resp.Header.Code, Message: msg}
	}
	return resp.Body, nil
}

// Error is a refusal by the metaserver.
type Error struct {
	Request string
	Status  int16
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("metaserver refused %s: %s", e.Request, e.Message)
}

// AcquireMeta asks which group and role the broker at hostname:servePort has.
// syncPort is sent as a trailer so the metaserver can print an exact AddBroker command.
func (c *Client) AcquireMeta(ctx context.Context, hostname string, servePort, syncPort int) (protocol.BrokerAcquireMetaResponse, error) {
	body := protocol.AppendBrokerAcquireMetaRequest(nil, &protocol.BrokerAcquireMetaRequest{Hostname: hostname, Port: int32(servePort), SyncPort: int32(syncPort)})
	resp, err := c.call(ctx, protocol.CodeBrokerAcquireMeta, body)
	if err != nil {
		return protocol.BrokerAcquireMetaResponse{}, err
	}
	return protocol.DecodeBrokerAcquireMetaResponse(resp)
}

// RegisterBroker sends a master's ONLINE, HEARTBEAT or OFFLINE.
func (c *Client) RegisterBroker(ctx context.Context, r protocol.BrokerRegisterRequest) error {
	_, err := c.RegisterBrokerAnswer(ctx, r)
	return err
}

// RegisterBrokerAnswer is RegisterBroker returning the answer: qmq-go's
// metaserver names the subjects MarkReadonlyBrokerGroup made read-only in
// the group (Known false from QMQ's metaserver). An answer that cannot be
// decoded is not an error: the registration itself succeeded.
func (c *Client) RegisterBrokerAnswer(ctx context.Context, r protocol.BrokerRegisterRequest) (protocol.BrokerRegisterResponse, error) {
	body, err := c.call(ctx, protocol.CodeBrokerRegister, protocol.AppendBrokerRegisterRequest(nil, &r))
	if err != nil {
		return protocol.BrokerRegisterResponse{}, err
	}
	resp, _ := protocol.DecodeBrokerRegisterResponse(body)
	return resp, nil
}

// RegisterClient asks for the broker groups of a subject.
func (c *Client) RegisterClient(ctx context.Context, r protocol.ClientRegisterRequest) (protocol.ClientRegisterResponse, error) {
	resp, err := c.call(ctx, protocol.CodeClientRegister, protocol.AppendClientRegisterRequest(nil, &r))
	if err != nil {
		return protocol.ClientRegisterResponse{}, err
	}
	return protocol.DecodeClientRegisterResponse(resp)
}
