package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
)

// Defaults for ServerConfig zero values.
const (
	DefaultWriteTimeout          = 30 * time.Second
	DefaultMaxConcurrentRequests = 256
)

// Request is one request frame and where it came from.
type Request struct {
	Frame      protocol.Frame
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// Conn is the connection the request arrived on: the same *Conn for
	// every request of one connection, never reused for another.
	Conn *Conn

	onWritten []func()
	tail      FileTail
}

// FileTail is part of a response the server sends straight from a file,
// after the handler's body: with sendfile(2) on TCP, so the bytes are not
// copied through the process (a master's replication answers are hundreds
// of KiB of its log, many times a second).
type FileTail struct {
	File   *os.File
	Offset int64
	Len    int
}

// SetFileTail makes t the end of the response: the frame is the handler's
// body followed by t's bytes. The file must stay open and unchanged over
// that range until the response is written (OnWritten).
func (r *Request) SetFileTail(t FileTail) { r.tail = t }

// OnWritten registers f to run once the handler's response has been written
// (or dropped because the connection closed): a handler may answer with a
// body it borrowed, such as a pooled buffer, and take it back in f.
func (r *Request) OnWritten(f func()) { r.onWritten = append(r.onWritten, f) }

// written runs the OnWritten callbacks once the response is out.
func (r *Request) written() {
	for _, f := range r.onWritten {
		f()
	}
	r.onWritten = nil
}

// Conn is the connection a request arrived on, for handlers that keep
// per-connection state (a replication session that authenticated on it,
// say): its identity is the pointer, so state kept in or keyed by it cannot
// pass to a later connection, even one from the same address and port.
type Conn struct {
	c *conn

	mu    sync.Mutex
	value any
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.c.remote }

// Done is closed once the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.c.ctx.Done() }

// Close closes the connection; requests in flight see their context end.
func (c *Conn) Close() { c.c.close() }

// LoadOrStore returns the connection's value, storing v first if it has
// none (nil v stores nothing). Handlers of one connection run concurrently:
// this is how they agree on one value.
func (c *Conn) LoadOrStore(v any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.value == nil {
		c.value = v
	}
	return c.value
}

// Handler serves one request code. The returned frame's status (Header.Code)
// and body are sent back; the server fills in opaque, flag, version and
// request code. ctx is cancelled when the connection or the server closes.
type Handler interface {
	Serve(ctx context.Context, req *Request) protocol.Frame
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) protocol.Frame

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, req *Request) protocol.Frame { return f(ctx, req) }

// ServerConfig configures a Server.
type ServerConfig struct {
	// Addr is the TCP address to listen on, e.g. ":20880" or "127.0.0.1:0".
	Addr string
	// MaxFrameSize bounds incoming frames; 0 means protocol.DefaultMaxFrameSize.
	MaxFrameSize int
	// Logger receives the server's logs; nil discards them.
	Logger hclog.Logger
	// IdleTimeout closes a connection on which no frame has arrived for this
	// long while none of its requests was being served (a long poll in
	// flight keeps it open); 0 means never. It must exceed the peers'
	// heartbeat interval.
	IdleTimeout time.Duration
	// FrameReadTimeout bounds reading one frame once its first byte has
	// arrived: a peer trickling a frame is cut off. 0 means
	// DefaultFrameReadTimeout, a negative value no limit.
	FrameReadTimeout time.Duration
	// MaxConnections bounds the connections open at once; a connection
	// beyond it is closed as soon as it is accepted (logged, counted in
	// ServerStats.Refused). 0 means DefaultMaxConnections.
	MaxConnections int
	// MemoryBudget bounds the bytes of request bodies the server holds at
	// once, from the first byte read until the handler returns. A frame that
	// needs more waits (its connection is not read meanwhile) and is cut
	// off at its read timeout; a frame's first buffer (what has arrived, up
	// to the 32 KiB read buffer) is always granted, so small requests are
	// served while large ones wait. 0 means DefaultMemoryBudget; a value
	// below MaxFrameSize is raised to it.
	MemoryBudget int64
	// WriteTimeout bounds writing one response; 0 means DefaultWriteTimeout,
	// a negative value means no limit. A connection whose write times out is
	// closed.
	WriteTimeout time.Duration
	// MaxConcurrentRequests bounds the requests in flight per connection;
	// 0 means DefaultMaxConcurrentRequests.
	MaxConcurrentRequests int
	// OnBadFrame, if set, is called (from the connection's reader goroutine)
	// for every malformed frame, before the connection is closed.
	OnBadFrame func(remote net.Addr, err error)
}

// ServerStats are cumulative counters (Connections and BufferedBytes are
// gauges).
type ServerStats struct {
	Connections   int64  // open now
	Accepted      uint64 // connections accepted
	Requests      uint64 // request frames received
	BadFrames     uint64 // malformed frames (each closed its connection)
	UnknownCodes  uint64 // requests answered with UNKNOWN_CODE
	Panics        uint64 // handler panics recovered
	Refused       uint64 // connections closed at once: MaxConnections were open
	IdleClosed    uint64 // connections closed after IdleTimeout of silence
	FrameTimeouts uint64 // connections closed because a frame took longer than FrameReadTimeout
	BudgetRefused uint64 // connections closed because their frame found no room in MemoryBudget in time
	BufferedBytes int64  // request body bytes held now (read, or being read, and not yet served)
}

// Server accepts QMQ connections and dispatches requests to handlers.
type Server struct {
	cfg          ServerConfig
	log          hclog.Logger
	maxFrame     int
	writeTimeout time.Duration
	maxInflight  int
	frameTimeout time.Duration
	maxConns     int
	budget       *budget
	refuseLog    lograte.Limiter // connections refused at maxConns
	budgetLog    lograte.Limiter // frames cut off for want of memory budget
	slowLog      lograte.Limiter // frames cut off at their read timeout

	mu       sync.Mutex
	handlers map[int16]Handler
	ln       net.Listener
	serving  bool
	closed   bool
	conns    map[*conn]struct{}

	done      chan struct{}    // closed by Close
	work      chan handlerTask // requests for idle handler goroutines (unbuffered: taken only by one waiting)
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // connection goroutines

	connections  atomic.Int64
	accepted     atomic.Uint64
	requests     atomic.Uint64
	badFrames    atomic.Uint64
	unknownCodes atomic.Uint64
	panics       atomic.Uint64
	refused      atomic.Uint64
	idleClosed   atomic.Uint64
	frameCut     atomic.Uint64
	budgetCut    atomic.Uint64
}

// NewServer returns a Server; register handlers, then Listen and Serve.
func NewServer(cfg ServerConfig) *Server {
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		maxFrame:     cfg.MaxFrameSize,
		writeTimeout: cfg.WriteTimeout,
		maxInflight:  cfg.MaxConcurrentRequests,
		frameTimeout: cfg.FrameReadTimeout,
		maxConns:     cfg.MaxConnections,
		refuseLog:    lograte.Limiter{Interval: 5 * time.Second},
		budgetLog:    lograte.Limiter{Interval: 5 * time.Second},
		slowLog:      lograte.Limiter{Interval: 5 * time.Second},
		handlers:     make(map[int16]Handler),
		conns:        make(map[*conn]struct{}),
		done:         make(chan struct{}),
		work:         make(chan handlerTask),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.maxFrame <= 0 || s.maxFrame > protocol.DefaultMaxFrameSize {
		s.maxFrame = protocol.DefaultMaxFrameSize
	}
	if s.writeTimeout == 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	if s.maxInflight <= 0 {
		s.maxInflight = DefaultMaxConcurrentRequests
	}
	switch {
	case s.frameTimeout == 0:
		s.frameTimeout = DefaultFrameReadTimeout
	case s.frameTimeout < 0:
		s.frameTimeout = 0
	}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConnections
	}
	limit := cfg.MemoryBudget
	if limit <= 0 {
		limit = DefaultMemoryBudget
	}
	s.budget = newBudget(max(limit, int64(s.maxFrame)))
	return s
}

// Handle registers h for request code code, replacing any previous handler.
// It may be called at any time.
func (s *Server) Handle(code int16, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[code] = h
}

func (s *Server) handler(code int16) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handlers[code]
}

// Listen binds ServerConfig.Addr. Addr is valid afterwards.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("remoting: server is closed")
	}
	if s.ln != nil {
		return errors.New("remoting: server is already listening")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("remoting: listen on %q: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Connections:   s.connections.Load(),
		Accepted:      s.accepted.Load(),
		Requests:      s.requests.Load(),
		BadFrames:     s.badFrames.Load(),
		UnknownCodes:  s.unknownCodes.Load(),
		Panics:        s.panics.Load(),
		Refused:       s.refused.Load(),
		IdleClosed:    s.idleClosed.Load(),
		FrameTimeouts: s.frameCut.Load(),
		BudgetRefused: s.budgetCut.Load(),
		BufferedBytes: s.budget.inUse(),
	}
}

// Serve accepts connections until ctx is done or Close is called, then
// closes the server and returns nil once every connection goroutine has
// finished. It calls Listen first if needed. It returns an error if the
// listener fails for another reason (the server is then still open: call
// Close).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	needListen := s.ln == nil
	s.mu.Unlock()
	if needListen {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("remoting: Serve called twice")
	}
	s.serving = true
	ln := s.ln
	s.mu.Unlock()

	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-watcherDone
	}()

	s.log.Info("listening", "addr", ln.Addr().String())
	retry := backoff.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				s.wg.Wait()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("remoting: listener %s closed unexpectedly: %w", ln.Addr(), err)
			}
			// Resource exhaustion (EMFILE, ENFILE...) is usually transient.
			wait := retry.Next()
			s.log.Warn("accept failed; retrying", "addr", ln.Addr().String(), "error", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-s.done:
			}
			continue
		}
		retry.Reset()
		s.startConn(nc)
	}
}

func (s *Server) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close stops accepting, closes every connection, cancels handler contexts
// and waits for all connection and handler goroutines. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		ln := s.ln
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		close(s.done)
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.closeErr = err
			}
		}
		for _, c := range conns {
			c.close()
		}
	})
	s.wg.Wait()
	return s.closeErr
}

func (s *Server) startConn(nc net.Conn) {
	// Only this goroutine adds connections, so the count cannot grow
	// between the check and the add below.
	if open := s.connections.Load(); open >= int64(s.maxConns) {
		s.refused.Add(1)
		s.refuseLog.Warn(s.log, "refusing connection: the port already has its maximum of open connections; if legitimate clients are refused, raise the port's max.connections setting",
			"remote", nc.RemoteAddr().String(), "max_connections", s.maxConns, "refused_total", s.refused.Load())
		nc.Close()
		return
	}
	c := &conn{
		srv:    s,
		nc:     nc,
		remote: nc.RemoteAddr(),
		local:  nc.LocalAddr(),
		sem:    make(chan struct{}, s.maxInflight),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.pub.c = c
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.cancel()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.accepted.Add(1)
	s.connections.Add(1)
	go c.serve()
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connections.Add(-1)
}

// conn is one accepted connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	remote net.Addr
	local  net.Addr
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	sem       chan struct{}  // bounds requests in flight
	inflight  sync.WaitGroup // handler goroutines
	busy      atomic.Int32   // handlers running: the connection is not idle
	wmu       sync.Mutex     // serialises writes
	closeOnce sync.Once

	pub Conn // what handlers see (Request.Conn)
	// Reader goroutine only:
	warnedUnknown bool
	frameDeadline time.Time // when the frame being read must be complete (zero: no limit)
	reserved      int64     // budget bytes granted to the frame being read
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.nc.Close()
	})
}

// serve is the connection's reader goroutine.
func (c *conn) serve() {
	s := c.srv
	defer s.wg.Done()
	defer s.removeConn(c)
	defer c.inflight.Wait()
	defer c.close()

	log := s.log.With("remote", c.remote.String())
	log.Debug("connection opened")
	br := bufio.NewReaderSize(c.nc, 32<<10)
	opts := protocol.ReadOptions{MaxFrameSize: s.maxFrame, Reserve: c.reserve}
	for {
		if err := c.awaitFrame(br); err != nil {
			c.readFailed(log, err, false)
			return
		}
		c.frameDeadline = time.Time{}
		if s.frameTimeout > 0 {
			c.frameDeadline = time.Now().Add(s.frameTimeout)
		}
		c.nc.SetReadDeadline(c.frameDeadline)
		c.reserved = 0
		f, err := protocol.ReadFrameWith(br, opts)
		held := c.reserved
		if err != nil {
			s.budget.release(held)
			c.readFailed(log, err, true)
			return
		}
		if f.IsResponse() {
			s.budget.release(held)
			log.Debug("ignoring a response frame sent to the server",
				"request_code", protocol.CodeName(f.Header.RequestCode, false), "opaque", f.Header.Opaque)
			continue
		}
		s.requests.Add(1)
		h := s.handler(f.Header.Code)
		if h == nil {
			s.budget.release(held)
			c.answerUnhandled(log, f.Header)
			continue
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			s.budget.release(held)
			return
		}
		c.inflight.Add(1)
		c.busy.Add(1)
		s.dispatch(handlerTask{c: c, log: log, h: h, f: f, held: held})
	}
}

// handlerTask is one request for a handler goroutine.
type handlerTask struct {
	c    *conn
	log  hclog.Logger
	h    Handler
	f    protocol.Frame
	held int64
}

// handlerIdle is how long a handler goroutine waits for another request
// before it exits.
const handlerIdle = 5 * time.Second

// dispatch runs t on an idle handler goroutine, or on a new one if none is
// idle. Handler goroutines are reused rather than started per request: a
// fresh goroutine starts on a small stack that every SEND_MESSAGE, PULL and
// ACK handler grew again (runtime.newstack/copystack were 9.5% of the
// broker's CPU at 10k msg/s, issue 19); a reused one keeps its grown stack.
// The number of goroutines is still one per request in flight: a long poll
// holds its goroutine as before.
func (s *Server) dispatch(t handlerTask) {
	select {
	case s.work <- t:
	default:
		go s.handlerLoop(t)
	}
}

func (s *Server) handlerLoop(t handlerTask) {
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		t.c.handle(t.log, t.h, t.f, t.held)
		t = handlerTask{} // keep no reference to the request while idle
		idle.Reset(handlerIdle)
		select {
		case t = <-s.work:
		case <-idle.C:
			return
		case <-s.done:
			return
		}
	}
}

// awaitFrame waits for the first byte of the next frame, for at most
// IdleTimeout while no request of the connection is being served.
func (c *conn) awaitFrame(br *bufio.Reader) error {
	if br.Buffered() > 0 {
		return nil
	}
	idle := c.srv.cfg.IdleTimeout
	for {
		var deadline time.Time
		if idle > 0 {
			deadline = time.Now().Add(idle)
		}
		c.nc.SetReadDeadline(deadline)
		_, err := br.Peek(1)
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && c.busy.Load() > 0 && c.ctx.Err() == nil {
			continue // a long poll in flight: the peer waits for us, it is not idle
		}
		return err
	}
}

// reserve is the frame reader's Reserve: it accounts body buffers in the
// server's memory budget, waiting for room until the frame's deadline.
func (c *conn) reserve(n int, first bool) error {
	b := c.srv.budget
	if first {
		b.take(int64(n))
	} else {
		deadline := c.frameDeadline
		if deadline.IsZero() {
			deadline = time.Now().Add(DefaultFrameReadTimeout)
		}
		if err := b.acquire(int64(n), deadline, c.ctx.Done()); err != nil {
			return err
		}
	}
	c.reserved += int64(n)
	return nil
}

// readFailed logs why reading stopped; inFrame: while reading a frame
// (rather than waiting for one).
func (c *conn) readFailed(log hclog.Logger, err error, inFrame bool) {
	var fe *protocol.FrameError
	var ne net.Error
	var be *budgetError
	s := c.srv
	switch {
	case errors.As(err, &be):
		s.budgetCut.Add(1)
		s.budgetLog.Warn(log, "closing connection: its frame found no room in the server's frame memory budget in time; raise the port's frame.memory.budget.bytes if legitimate traffic needs it",
			"error", err, "frame_read_timeout", s.frameTimeout)
	case c.ctx.Err() != nil:
		// Closed by us (server shutdown or a failed write).
	case errors.Is(err, io.EOF):
		log.Debug("connection closed by peer")
	case errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF):
		log.Debug("connection closed by peer in the middle of a frame", "error", err)
	case errors.As(err, &fe):
		c.srv.badFrames.Add(1)
		log.Warn("malformed frame; closing connection", "error", err)
		if cb := c.srv.cfg.OnBadFrame; cb != nil {
			cb(c.remote, err)
		}
	case errors.As(err, &ne) && ne.Timeout() && inFrame:
		s.frameCut.Add(1)
		s.slowLog.Warn(log, "closing connection: a frame did not arrive in full within the frame read timeout (a peer sending too slowly, or trickling bytes to hold memory)",
			"frame_read_timeout", s.frameTimeout)
	case errors.As(err, &ne) && ne.Timeout():
		s.idleClosed.Add(1)
		log.Debug("closing idle connection", "idle_timeout", s.cfg.IdleTimeout)
	default:
		log.Debug("connection read failed", "error", err)
	}
}

// answerUnhandled answers a request no handler is registered for.
func (c *conn) answerUnhandled(log hclog.Logger, req protocol.Header) {
	if req.Code == protocol.CodeHeartbeat {
		c.write(log, protocol.NewResponse(req, protocol.CodeSuccess, nil), FileTail{})
		return
	}
	c.srv.unknownCodes.Add(1)
	msg := fmt.Sprintf("unknown request code %d (%s): this server does not handle it",
		req.Code, protocol.CodeName(req.Code, false))
	if !c.warnedUnknown {
		c.warnedUnknown = true
		log.Warn("request with an unhandled code (further ones on this connection are logged at debug)", "code", req.Code, "name", protocol.CodeName(req.Code, false))
	} else {
		log.Debug("request with an unhandled code", "code", req.Code)
	}
	c.write(log, protocol.NewResponse(req, protocol.CodeUnknownCode, protocol.AppendErrorBody(nil, msg)), FileTail{})
}

// handle runs one handler in its own goroutine and writes its response.
// held is what the request's body holds of the memory budget, released
// once the handler has returned.
func (c *conn) handle(log hclog.Logger, h Handler, f protocol.Frame, held int64) {
	defer c.inflight.Done()
	defer func() { <-c.sem }()
	defer c.busy.Add(-1)
	req := &Request{Frame: f, RemoteAddr: c.remote, LocalAddr: c.local, Conn: &c.pub}
	resp := c.run(log, h, req)
	c.srv.budget.release(held)
	resp.Header.Opaque = f.Header.Opaque
	resp.Header.Flag = protocol.FlagResponse
	resp.Header.Version = f.Header.Version
	resp.Header.RequestCode = f.Header.Code
	if len(resp.Body)+req.tail.Len > c.srv.maxFrameBody() {
		log.Error("handler response too large; answering BROKER_ERROR",
			"code", protocol.CodeName(f.Header.Code, false), "body_bytes", len(resp.Body))
		resp = protocol.NewResponse(f.Header, protocol.CodeBrokerError,
			protocol.AppendErrorBody(nil, fmt.Sprintf("response to %s too large (%d bytes)", protocol.CodeName(f.Header.Code, false), len(resp.Body)+req.tail.Len)))
		req.tail = FileTail{}
	}
	c.write(log, resp, req.tail)
	req.written()
}

func (s *Server) maxFrameBody() int { return protocol.DefaultMaxFrameSize - 2 - protocol.HeaderSize }

// run calls the handler, converting a panic into a BROKER_ERROR response.
func (c *conn) run(log hclog.Logger, h Handler, req *Request) (resp protocol.Frame) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.panics.Add(1)
			name := protocol.CodeName(req.Frame.Header.Code, false)
			log.Error("request handler panicked", "code", name, "opaque", req.Frame.Header.Opaque,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp = protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerError,
				protocol.AppendErrorBody(nil, "internal error while handling "+name))
		}
	}()
	return h.Serve(c.ctx, req)
}

// write sends one frame, followed by tail's file bytes if any (see
// FileTail); a failed write closes the connection.
func (c *conn) write(log hclog.Logger, f protocol.Frame, tail FileTail) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	if c.srv.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout))
	}
	var err error
	if tail.Len == 0 {
		err = protocol.WriteFrame(c.nc, f.Header, f.Body)
	} else {
		err = writeFrameWithTail(c.nc, f, tail)
	}
	if err != nil {
		log.Debug("write failed; closing connection", "error", err)
		c.close()
	}
}

// writeFrameWithTail writes the frame's header and body, then the tail with
// sendfile(2), in one TCP segment where they fit (a plain copy where the
// connection is not TCP).
func writeFrameWithTail(nc net.Conn, f protocol.Frame, t FileTail) error {
	head := protocol.AppendFrameHeader(make([]byte, 0, 4+2+protocol.HeaderSize+len(f.Body)), f.Header, len(f.Body)+t.Len)
	head = append(head, f.Body...)
	return sendFile(nc, head, t)
}

// copyTail writes head and then t's bytes to nc through the process: where
// sendfile(2) cannot be used.
func copyTail(nc net.Conn, head []byte, t FileTail) error {
	if _, err := nc.Write(head); err != nil { // a net.Conn writes everything or fails
		return err
	}
	_, err := io.Copy(nc, io.NewSectionReader(t.File, t.Offset, int64(t.Len)))
	return err
}
