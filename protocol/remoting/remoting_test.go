package remoting

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/protocol"

	"github.com/qmq-go/qmq/internal/testlog"
)

type testServer struct {
	*Server
	logs  *testlog.Buffer
	serve chan error
}

// startServer starts a server on a loopback port; it is closed at test end.
func startServer(t *testing.T, cfg ServerConfig, handlers map[int16]Handler) *testServer {
	t.Helper()
	logs := &testlog.Buffer{}
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "test", Output: logs, Level: hclog.Debug})
	}
	s := NewServer(cfg)
	for code, h := range handlers {
		s.Handle(code, h)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, logs: logs, serve: make(chan error, 1)}
	go func() { ts.serve <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-ts.serve; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ts
}

func dial(t *testing.T, s *testServer) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var echo = HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, append([]byte("echo:"), req.Frame.Body...))
})

func TestRequestResponse(t *testing.T) {
	var gotReq *Request
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodeBrokerAcquireMeta: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			gotReq = req
			v, err := protocol.DecodeBrokerAcquireMetaRequest(req.Frame.Body)
			if err != nil {
				return protocol.NewResponse(req.Frame.Header, protocol.CodeParamError, protocol.AppendErrorBody(nil, err.Error()))
			}
			resp := protocol.BrokerAcquireMetaResponse{GroupName: "g-" + v.Hostname, MasterAddress: "", Role: protocol.RoleMaster}
			// Only status and body matter: the server fixes up the rest.
			return protocol.Frame{Header: protocol.Header{Code: protocol.CodeSuccess}, Body: protocol.AppendBrokerAcquireMetaResponse(nil, &resp)}
		}),
	})
	c := dial(t, s)
	body := protocol.AppendBrokerAcquireMetaRequest(nil, &protocol.BrokerAcquireMetaRequest{Hostname: "qmq-server01", Port: 20881})
	f, err := c.CallVersion(callCtx(t), protocol.CodeBrokerAcquireMeta, protocol.Version8, body)
	if err != nil {
		t.Fatal(err)
	}
	h := f.Header
	if h.Code != protocol.CodeSuccess || h.Flag != protocol.FlagResponse || h.Version != protocol.Version8 || h.RequestCode != protocol.CodeBrokerAcquireMeta || h.Opaque == 0 {
		t.Fatalf("response header %+v", h)
	}
	v, err := protocol.DecodeBrokerAcquireMetaResponse(f.Body)
	if err != nil || v.GroupName != "g-qmq-server01" {
		t.Fatalf("%+v %v", v, err)
	}
	if gotReq.RemoteAddr == nil || gotReq.LocalAddr.String() != s.Addr().String() {
		t.Fatalf("request addresses %v %v", gotReq.RemoteAddr, gotReq.LocalAddr)
	}

	// Heartbeat is answered without a handler.
	f, err = c.Call(callCtx(t), protocol.CodeHeartbeat, nil)
	if err != nil || f.Header.Code != protocol.CodeSuccess || len(f.Body) != 0 || f.Header.RequestCode != protocol.CodeHeartbeat {
		t.Fatalf("heartbeat: %+v %v", f.Header, err)
	}
	if st := s.Stats(); st.Requests != 2 || st.Accepted != 1 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentCalls(t *testing.T) {
	var inflight, peak atomic.Int32
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodeSendMessage: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			// Later requests finish first, so responses come back out of order.
			d := time.Duration(int(req.Frame.Body[0])%5) * time.Millisecond
			time.Sleep(d)
			return echo(ctx, req)
		}),
	})
	c := dial(t, s)
	const workers, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				body := fmt.Appendf([]byte{byte(i)}, "w%d-c%d", w, i)
				f, err := c.Call(callCtx(t), protocol.CodeSendMessage, body)
				if err != nil {
					errs <- err
					return
				}
				if want := append([]byte("echo:"), body...); !bytes.Equal(f.Body, want) {
					errs <- fmt.Errorf("got %q, want %q", f.Body, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if peak.Load() < 2 {
		t.Fatalf("requests were not handled concurrently (peak %d)", peak.Load())
	}
}

func TestUnknownCode(t *testing.T) {
	s := startServer(t, ServerConfig{}, nil)
	c := dial(t, s)
	for range 2 {
		f, err := c.Call(callCtx(t), protocol.CodePullMessage, []byte{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Code != protocol.CodeUnknownCode || f.Header.RequestCode != protocol.CodePullMessage {
			t.Fatalf("header %+v", f.Header)
		}
		if msg := protocol.DecodeErrorBody(f.Body); !strings.Contains(msg, "unknown request code 11 (PULL_MESSAGE)") {
			t.Fatalf("error body %q", msg)
		}
	}
	if n := strings.Count(s.logs.String(), "[WARN]"); n != 1 {
		t.Fatalf("want one WARN line for unknown codes on a connection, got %d:\n%s", n, s.logs)
	}
	if st := s.Stats(); st.UnknownCodes != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// rawConn opens a plain TCP connection to the server.
func rawConn(t *testing.T, s *testServer) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc
}

// expectClosed reads until the server closes the connection.
func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	data, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if len(data) != 0 {
		t.Fatalf("server sent %q before closing", data)
	}
}

func TestGarbageClosesConnectionOnly(t *testing.T) {
	type bad struct {
		remote net.Addr
		err    error
	}
	bads := make(chan bad, 4)
	s := startServer(t, ServerConfig{OnBadFrame: func(remote net.Addr, err error) { bads <- bad{remote, err} }},
		map[int16]Handler{protocol.CodeSendMessage: echo})

	// A good client connected before the garbage keeps working.
	before := dial(t, s)

	nc := rawConn(t, s)
	if _, err := nc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, nc)

	b := <-bads
	if b.remote.String() != nc.LocalAddr().String() || !strings.Contains(b.err.Error(), "bad magic 0x48545450") {
		t.Fatalf("OnBadFrame(%v, %v)", b.remote, b.err)
	}
	logs := s.logs.String()
	var warn string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "[WARN]") {
			if warn != "" {
				t.Fatalf("more than one WARN line:\n%s", logs)
			}
			warn = line
		}
	}
	for _, want := range []string{"malformed frame", nc.LocalAddr().String(), "bad magic", "HTTP client"} {
		if !strings.Contains(warn, want) {
			t.Fatalf("WARN line %q lacks %q", warn, want)
		}
	}

	for _, c := range []*Client{before, dial(t, s)} {
		f, err := c.Call(callCtx(t), protocol.CodeSendMessage, []byte("x"))
		if err != nil || string(f.Body) != "echo:x" {
			t.Fatalf("server stopped answering after garbage: %v", err)
		}
	}
	if st := s.Stats(); st.BadFrames != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOversizeFrameDeclared(t *testing.T) {
	bads := make(chan error, 1)
	s := startServer(t, ServerConfig{MaxFrameSize: 1 << 10, OnBadFrame: func(_ net.Addr, err error) { bads <- err }},
		map[int16]Handler{protocol.CodeSendMessage: echo})
	nc := rawConn(t, s)
	frame := protocol.AppendFrame(nil, protocol.Header{Code: protocol.CodeSendMessage, Version: 9, Opaque: 1}, nil)
	binary.BigEndian.PutUint32(frame, 50<<20) // declares 50 MiB
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, nc)
	if err := <-bads; !strings.Contains(err.Error(), "frame length 52428800 exceeds the limit of 1024 bytes") {
		t.Fatalf("error %v", err)
	}
	// A frame within the limit still works on a new connection.
	c := dial(t, s)
	if _, err := c.Call(callCtx(t), protocol.CodeSendMessage, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	// One over the limit kills the connection; the pending call fails.
	_, err := c.Call(callCtx(t), protocol.CodeSendMessage, make([]byte, 1010))
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("oversize call: %v", err)
	}
}

func TestResponseFrameToServerIgnored(t *testing.T) {
	s := startServer(t, ServerConfig{}, map[int16]Handler{protocol.CodeSendMessage: echo})
	nc := rawConn(t, s)
	resp := protocol.NewResponse(protocol.Header{Code: protocol.CodeSendMessage, Opaque: 5, Version: 9}, protocol.CodeSuccess, []byte("stray"))
	req := protocol.NewRequest(protocol.CodeSendMessage, 6, []byte("hi"))
	var out []byte
	out = protocol.AppendFrame(out, resp.Header, resp.Body)
	out = protocol.AppendFrame(out, req.Header, req.Body)
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	f, err := protocol.ReadFrame(nc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Opaque != 6 || string(f.Body) != "echo:hi" {
		t.Fatalf("got %+v %q", f.Header, f.Body)
	}
}

func TestHandlerPanic(t *testing.T) {
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodeClientRegister: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			panic("boom")
		}),
		protocol.CodeSendMessage: echo,
	})
	c := dial(t, s)
	f, err := c.Call(callCtx(t), protocol.CodeClientRegister, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.Code != protocol.CodeBrokerError || protocol.DecodeErrorBody(f.Body) != "internal error while handling CLIENT_REGISTER" {
		t.Fatalf("%+v %q", f.Header, f.Body)
	}
	// Same connection still works.
	if f, err := c.Call(callCtx(t), protocol.CodeSendMessage, []byte("a")); err != nil || string(f.Body) != "echo:a" {
		t.Fatalf("after panic: %v", err)
	}
	logs := s.logs.String()
	if strings.Count(logs, "request handler panicked") != 1 || !strings.Contains(logs, "boom") {
		t.Fatalf("logs:\n%s", logs)
	}
	if s.Stats().Panics != 1 {
		t.Fatal("panic not counted")
	}
}

// blockingHandler blocks until its context is cancelled and reports that.
func blockingHandler(started chan<- struct{}, cancelled *atomic.Int32) Handler {
	return HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
		started <- struct{}{}
		<-ctx.Done()
		cancelled.Add(1)
		return protocol.NewResponse(req.Frame.Header, protocol.CodeBrokerError, nil)
	})
}

func TestServerCloseWithInflightCalls(t *testing.T) {
	started := make(chan struct{}, 8)
	var cancelled atomic.Int32
	s := startServer(t, ServerConfig{}, map[int16]Handler{protocol.CodePullMessage: blockingHandler(started, &cancelled)})
	c := dial(t, s)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Call(callCtx(t), protocol.CodePullMessage, nil)
			errs <- err
		}()
	}
	for range n {
		<-started
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if cancelled.Load() != n {
		t.Fatalf("%d handler contexts cancelled, want %d", cancelled.Load(), n)
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrConnLost) {
			t.Fatalf("pending call: %v", err)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the server closing")
	}
	if st := s.Stats(); st.Connections != 0 {
		t.Fatalf("stats after close %+v", st)
	}
	// Serve returned nil (checked in cleanup); Close is idempotent.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClientCloseWithInflightCalls(t *testing.T) {
	started := make(chan struct{}, 8)
	var cancelled atomic.Int32
	s := startServer(t, ServerConfig{}, map[int16]Handler{protocol.CodePullMessage: blockingHandler(started, &cancelled)})
	c := dial(t, s)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Call(callCtx(t), protocol.CodePullMessage, nil)
			errs <- err
		}()
	}
	<-started
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call: %v", err)
		}
	}
	if _, err := c.Call(callCtx(t), protocol.CodeHeartbeat, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	// The server sees the connection go and cancels its handlers.
	deadline := time.Now().Add(5 * time.Second)
	for cancelled.Load() != 2 || s.Stats().Connections != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server did not clean up: cancelled=%d stats=%+v", cancelled.Load(), s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientContextTimeout(t *testing.T) {
	release := make(chan struct{})
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodePullMessage: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return protocol.NewResponse(req.Frame.Header, protocol.CodeNoMessage, []byte("late"))
		}),
		protocol.CodeSendMessage: echo,
	})
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, protocol.CodePullMessage, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "PULL_MESSAGE call to") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	// The late response is dropped and the client keeps working.
	close(release)
	f, err := c.Call(callCtx(t), protocol.CodeSendMessage, []byte("b"))
	if err != nil || string(f.Body) != "echo:b" {
		t.Fatalf("after timeout: %+v %v", f, err)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	// An already-cancelled context fails at once without touching the connection.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.Call(done, protocol.CodeSendMessage, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

func TestServeStopsOnContext(t *testing.T) {
	s := NewServer(ServerConfig{Addr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("never listened")
		}
		time.Sleep(time.Millisecond)
	}
	c, err := Dial(context.Background(), s.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(callCtx(t), protocol.CodeHeartbeat, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	<-c.Done()
	if err := s.Listen(); err == nil {
		t.Fatal("Listen after Close succeeded")
	}
}

func TestIdleTimeout(t *testing.T) {
	s := startServer(t, ServerConfig{IdleTimeout: 100 * time.Millisecond}, nil)
	c := dial(t, s)
	if _, err := c.Call(callCtx(t), protocol.CodeHeartbeat, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), ErrConnLost) {
			t.Fatalf("err %v", c.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection was not closed")
	}
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(callCtx(t), addr, 0); err == nil || !strings.Contains(err.Error(), "remoting: dial "+addr) {
		t.Fatalf("got %v", err)
	}
}

// A handler answering with a borrowed buffer gets it back through OnWritten
// only after the response went out: the client reads the handler's bytes,
// not what the buffer's next user wrote into it.
func TestOnWrittenRunsAfterTheResponse(t *testing.T) {
	var (
		mu       sync.Mutex
		returned int
	)
	const size = 64 << 10        // large enough for the vectored write path
	pool := make(chan []byte, 1) // one buffer, lent to one response at a time
	pool <- make([]byte, 0, size)
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodeSendMessage: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			body := append((<-pool)[:0], bytes.Repeat([]byte("x"), size)...)
			req.OnWritten(func() {
				clear(body) // what the buffer's next user would do
				mu.Lock()
				returned++
				mu.Unlock()
				pool <- body
			})
			return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, body)
		}),
	})
	c := dial(t, s)
	for i := 0; i < 3; i++ {
		resp, err := c.Call(callCtx(t), protocol.CodeSendMessage, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(resp.Body, bytes.Repeat([]byte("x"), size)) {
			t.Fatalf("call %d: the response was changed after the buffer was returned", i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := returned
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnWritten ran %d times for 3 responses", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A response may end with a range of a file (sent with sendfile, its head
// with MSG_MORE): the client reads the handler's body followed by exactly
// those bytes, large ranges and large bodies included (the socket fills and
// the send waits for the reader, in the head or in the file's bytes).
func TestFileTail(t *testing.T) {
	content := make([]byte, 3<<20)
	for i := range content {
		content[i] = byte(i * 7)
	}
	path := t.TempDir() + "/segment"
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := startServer(t, ServerConfig{}, map[int16]Handler{
		protocol.CodeSyncLogRequest: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			off := int64(binary.BigEndian.Uint32(req.Frame.Body))
			n := int(binary.BigEndian.Uint32(req.Frame.Body[4:]))
			head := bytes.Repeat([]byte("head:"), int(binary.BigEndian.Uint32(req.Frame.Body[8:])))
			req.SetFileTail(FileTail{File: f, Offset: off, Len: n})
			return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, head)
		}),
	})
	c := dial(t, s)
	for _, r := range []struct{ off, n, heads int }{{0, 1, 1}, {12345, 100000, 1}, {1 << 20, 2 << 20, 1}, {len(content) - 10, 10, 1}, {7, 300000, 1 << 20}} {
		body := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(r.off)), uint32(r.n))
		body = binary.BigEndian.AppendUint32(body, uint32(r.heads))
		resp, err := c.Call(callCtx(t), protocol.CodeSyncLogRequest, body)
		if err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Repeat([]byte("head:"), r.heads), content[r.off:r.off+r.n]...)
		if !bytes.Equal(resp.Body, want) {
			t.Fatalf("range %d+%d after a body of %d bytes: got %d bytes, want %d (the handler's body, then the file's bytes)",
				r.off, r.n, 5*r.heads, len(resp.Body), len(want))
		}
	}
}
