package remoting

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// sendPartialFrame writes the header of a request frame declaring a body of
// declared bytes, then sent bytes of it, on a raw connection (in the
// background: the writes block once the server stops reading). It returns
// the connection and a channel closed when the writes are done or failed.
func sendPartialFrame(t *testing.T, s *testServer, declared, sent int) (net.Conn, <-chan struct{}) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		hdr := protocol.AppendFrameHeader(nil, protocol.Header{Code: protocol.CodeSendMessage, Version: 9, Opaque: 1, RequestCode: protocol.CodeSendMessage}, declared)
		if _, err := nc.Write(hdr); err != nil {
			return
		}
		chunk := make([]byte, 64<<10)
		for left := sent; left > 0; left -= len(chunk) {
			if _, err := nc.Write(chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	}()
	return nc, done
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A peer that declares a large body and sends part of it costs the server
// about what it sent (it cost 4x that: the body buffer grew ahead of the
// data, 80 MB per connection for a 64 MiB header and 16 MiB of body).
func TestPartialFrameCostsWhatArrived(t *testing.T) {
	const declared, sent = 60 << 20, 8 << 20
	s := startServer(t, ServerConfig{}, map[int16]Handler{protocol.CodeSendMessage: echo})
	before := heapInUse()
	_, done := sendPartialFrame(t, s, declared, sent)
	<-done
	for end := time.Now().Add(2 * time.Second); s.Stats().BufferedBytes < sent && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the server has read all it can
	if grown := int64(heapInUse()) - int64(before); grown > sent*3/2 {
		t.Fatalf("heap grew by %d bytes for a frame declaring %d with %d sent; want about %d", grown, declared, sent, sent)
	}
	if got := s.Stats().BufferedBytes; got < sent || got > sent+1<<20 {
		t.Fatalf("stats say the server buffers %d bytes of a frame declaring %d with %d sent; want %d to %d", got, declared, sent, sent, sent+1<<20)
	}
}

// A peer trickling a frame is cut off at the frame read timeout, though it
// is never idle.
func TestFrameReadTimeoutCutsTrickle(t *testing.T) {
	s := startServer(t, ServerConfig{IdleTimeout: time.Minute, FrameReadTimeout: 300 * time.Millisecond},
		map[int16]Handler{protocol.CodeSendMessage: echo})
	nc := rawConn(t, s)
	frame := protocol.AppendFrame(nil, protocol.Header{Code: protocol.CodeSendMessage, Version: 9, Opaque: 1, RequestCode: protocol.CodeSendMessage}, make([]byte, 1000))
	start := time.Now()
	var werr error
	for i := 0; i < len(frame) && werr == nil; i++ {
		_, werr = nc.Write(frame[i : i+1])
		time.Sleep(20 * time.Millisecond)
	}
	if werr == nil {
		t.Fatalf("a frame trickled over %v was read in full; want it cut after 300ms", time.Since(start))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("trickling connection cut after %v; want about 300ms", took)
	}
	testutil.Eventually(t, 10*time.Second, "the frame timeout to be counted", func() bool { return s.Stats().FrameTimeouts == 1 })
	if logs := s.logs.String(); !strings.Contains(logs, "within the frame read timeout") || !strings.Contains(logs, nc.LocalAddr().String()) {
		t.Fatalf("no WARN line naming the cut connection:\n%s", logs)
	}
	if st := s.Stats(); st.BufferedBytes != 0 {
		t.Fatalf("%d bytes still buffered after the connection was cut", st.BufferedBytes)
	}
}

// An idle connection is closed, but not while a request of it is being
// served (a long poll longer than the idle timeout).
func TestIdleTimeoutSparesLongPolls(t *testing.T) {
	const idle = 150 * time.Millisecond
	s := startServer(t, ServerConfig{IdleTimeout: idle}, map[int16]Handler{
		protocol.CodePullMessage: HandlerFunc(func(ctx context.Context, req *Request) protocol.Frame {
			select {
			case <-time.After(4 * idle):
			case <-ctx.Done():
			}
			return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, []byte("late"))
		}),
	})
	c := dial(t, s)
	f, err := c.Call(callCtx(t), protocol.CodePullMessage, nil)
	if err != nil || string(f.Body) != "late" {
		t.Fatalf("long poll on a connection with a shorter idle timeout: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection was not closed after the long poll")
	}
	testutil.Eventually(t, 10*time.Second, "the idle close to be counted", func() bool { return s.Stats().IdleClosed == 1 })
}

// With MaxConnections open, one more is closed at once with a log line
// naming the limit and the peer; the others keep being served, and a slot
// freed is usable again.
func TestMaxConnectionsRefusesTheNextOne(t *testing.T) {
	const limit = 3
	s := startServer(t, ServerConfig{MaxConnections: limit}, map[int16]Handler{protocol.CodeSendMessage: echo})
	var clients []*Client
	for range limit {
		c := dial(t, s)
		if _, err := c.Call(callCtx(t), protocol.CodeSendMessage, []byte("x")); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	extra := rawConn(t, s)
	if n, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection %d: read %d bytes, %v; want it closed at once (io.EOF)", limit+1, n, err)
	}
	testutil.Eventually(t, 10*time.Second, "the refusal to be counted", func() bool { return s.Stats().Refused == 1 })
	logs := s.logs.String()
	for _, want := range []string{"refusing connection", "max_connections=" + strconv.Itoa(limit), extra.LocalAddr().String()} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
	for i, c := range clients {
		if f, err := c.Call(callCtx(t), protocol.CodeSendMessage, []byte("y")); err != nil || string(f.Body) != "echo:y" {
			t.Fatalf("client %d stopped being served after a refusal: %v", i, err)
		}
	}
	clients[0].Close()
	testutil.Eventually(t, 10*time.Second, "the closed connection to be gone", func() bool { return s.Stats().Connections == limit-1 })
	if _, err := dial(t, s).Call(callCtx(t), protocol.CodeSendMessage, []byte("z")); err != nil {
		t.Fatalf("a freed slot was not reusable: %v", err)
	}
}

// Many peers holding partial large frames cannot make the server hold more
// than its memory budget (plus each frame's first buffer), a normal client
// keeps getting answers meanwhile, and the budget is free again once they
// are cut off.
func TestMemoryBudgetHoldsAcrossConnections(t *testing.T) {
	const (
		budget    = 4 << 20
		attackers = 10
		declared  = 3 << 20
		sent      = 2 << 20
		firstBuf  = 32 << 10 // the read buffer: a frame's first buffer is always granted
	)
	s := startServer(t, ServerConfig{MaxFrameSize: 4 << 20, MemoryBudget: budget, FrameReadTimeout: 1500 * time.Millisecond},
		map[int16]Handler{protocol.CodeSendMessage: echo})
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			b := s.Stats().BufferedBytes
			mu.Lock()
			peak = max(peak, b)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	for range attackers {
		sendPartialFrame(t, s, declared, sent)
	}
	testutil.Eventually(t, 10*time.Second, "the budget to fill", func() bool { return s.Stats().BufferedBytes >= budget-1<<20 })

	c := dial(t, s)
	for i := range 20 {
		start := time.Now()
		f, err := c.Call(callCtx(t), protocol.CodeSendMessage, make([]byte, 1000))
		if err != nil || len(f.Body) != 1005 {
			t.Fatalf("call %d of a normal client while the budget is full: %v", i, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("call %d of a normal client took %v while the budget was full", i, took)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the attackers to be cut off", func() bool {
		st := s.Stats()
		return st.BudgetRefused+st.FrameTimeouts == attackers && st.BufferedBytes == 0
	})
	close(stop)
	<-sampled
	if limit := int64(budget + attackers*firstBuf); peak > limit {
		t.Fatalf("server held %d bytes of request bodies; the budget is %d (+%d of first buffers)", peak, budget, attackers*firstBuf)
	}
	st := s.Stats()
	if st.BudgetRefused == 0 {
		t.Fatalf("no connection was refused for the budget: %+v", st)
	}
	if !strings.Contains(s.logs.String(), "frame memory budget exhausted") {
		t.Fatalf("no log line for the budget refusals:\n%s", s.logs.String())
	}
	// A large frame fits again.
	if _, err := c.Call(callCtx(t), protocol.CodeSendMessage, make([]byte, 3<<20)); err != nil {
		t.Fatalf("a 3 MiB request after the attackers were cut off: %v", err)
	}
}
