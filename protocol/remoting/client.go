package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// ErrClosed is returned by calls on a Client that was closed with Close.
var ErrClosed = errors.New("remoting: client closed")

// ErrConnLost is wrapped by the error of calls that fail because the
// connection broke (peer closed it, read or write failed, protocol error).
var ErrConnLost = errors.New("remoting: connection lost")

// Client is one TCP connection to a QMQ server, shared by concurrent calls
// that are matched to responses by opaque.
type Client struct {
	nc       net.Conn
	addr     string
	maxFrame int

	wmu sync.Mutex // serialises writes

	mu         sync.Mutex
	pending    map[int32]chan protocol.Frame
	nextOpaque int32
	err        error         // why the client stopped; set once
	done       chan struct{} // closed when err is set

	readerDone chan struct{}
}

// Dial connects to addr. maxFrameSize bounds response frames (0 means
// protocol.DefaultMaxFrameSize). ctx bounds only the connection attempt.
func Dial(ctx context.Context, addr string, maxFrameSize int) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("remoting: dial %s: %w", addr, err)
	}
	c := &Client{
		nc:         nc,
		addr:       addr,
		maxFrame:   maxFrameSize,
		pending:    make(map[int32]chan protocol.Frame),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// RemoteAddr returns the server's address.
func (c *Client) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed once the client can no longer be used (Close was called or
// the connection broke); Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client is usable, then ErrClosed or the
// connection failure.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Call sends a request of the current protocol version and waits for its
// response, ctx's end, or the connection's failure. The response may carry
// any status; a non-success status is not an error here.
func (c *Client) Call(ctx context.Context, code int16, body []byte) (protocol.Frame, error) {
	return c.CallVersion(ctx, code, protocol.CurrentVersion, body)
}

// CallVersion is Call with an explicit header version.
func (c *Client) CallVersion(ctx context.Context, code int16, version int16, body []byte) (protocol.Frame, error) {
	if err := ctx.Err(); err != nil {
		return protocol.Frame{}, c.callErr(code, err)
	}
	ch := make(chan protocol.Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return protocol.Frame{}, c.callErr(code, err)
	}
	opaque := c.allocOpaque()
	c.pending[opaque] = ch
	c.mu.Unlock()

	h := protocol.Header{Code: code, Version: version, Opaque: opaque, Flag: protocol.FlagRequest, RequestCode: code}
	if err := c.write(ctx, h, body); err != nil {
		c.forget(opaque)
		return protocol.Frame{}, c.callErr(code, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-ctx.Done():
		c.forget(opaque)
		return protocol.Frame{}, c.callErr(code, ctx.Err())
	case <-c.done:
		select {
		case f := <-ch: // the response won the race with the failure
			return f, nil
		default:
		}
		c.forget(opaque)
		return protocol.Frame{}, c.callErr(code, c.Err())
	}
}

func (c *Client) callErr(code int16, err error) error {
	return fmt.Errorf("remoting: %s call to %s: %w", protocol.CodeName(code, false), c.addr, err)
}

// allocOpaque returns an opaque not in use. Caller holds c.mu.
func (c *Client) allocOpaque() int32 {
	for {
		c.nextOpaque++
		if _, busy := c.pending[c.nextOpaque]; !busy {
			return c.nextOpaque
		}
	}
}

func (c *Client) forget(opaque int32) {
	c.mu.Lock()
	delete(c.pending, opaque)
	c.mu.Unlock()
}

// aLongTimeAgo is a deadline in the past, used to interrupt a blocked write.
var aLongTimeAgo = time.Unix(1, 0)

// write sends one request. The write is bounded by ctx (deadline and
// cancellation); any write error breaks the client, since a partial frame
// corrupts the stream.
func (c *Client) write(ctx context.Context, h protocol.Header, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	c.nc.SetWriteDeadline(dl)
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.nc.SetWriteDeadline(aLongTimeAgo)
		close(interrupted)
	})
	err := protocol.WriteFrame(c.nc, h, body)
	if !stop() {
		<-interrupted
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (write interrupted: %w)", ctx.Err(), err)
	}
	c.fail(fmt.Errorf("%w: write to %s failed: %w", ErrConnLost, c.addr, err))
	return err
}

// readLoop is the client's reader goroutine.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	br := bufio.NewReaderSize(c.nc, 32<<10)
	for {
		f, err := protocol.ReadFrame(br, c.maxFrame)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("closed by the server")
			}
			c.fail(fmt.Errorf("%w: %s: %w", ErrConnLost, c.addr, err))
			return
		}
		if !f.IsResponse() {
			// Servers do not send requests to clients; ignore any.
			continue
		}
		c.mu.Lock()
		ch := c.pending[f.Header.Opaque]
		delete(c.pending, f.Header.Opaque)
		c.mu.Unlock()
		if ch != nil {
			ch <- f // buffered; at most one response per opaque is delivered
		}
	}
}

// fail records why the client stopped (first reason wins), wakes every
// pending call and closes the connection.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	c.mu.Unlock()
	c.nc.Close()
}

// Close closes the connection, fails pending calls with ErrClosed and waits
// for the reader goroutine.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	<-c.readerDone
	return nil
}
