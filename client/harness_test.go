package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// testLogger logs into the test output.
func testLogger(t *testing.T, name string) hclog.Logger {
	return testlog.Logger(t, name, hclog.Debug)
}

// startMeta runs a real metaserver (embedded SQLite) and returns its
// meta.server.endpoint URL and a client to register brokers with.
func startMeta(t *testing.T) (string, *meta.Client) {
	t.Helper()
	srv := metatest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mc, err := meta.Dial(ctx, srv.TCP())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Close() })
	return srv.Endpoint(), mc
}

// fakeBroker is a TEST DOUBLE of a broker master: an in-memory SEND /
// PULL / ACK implementation just good enough to exercise the client (one
// shared cursor per subject+group, a pull log per consumer, lost-ack
// redelivery, tag filters, long polling by polling). The real broker lives
// in services/broker.
type fakeBroker struct {
	t     *testing.T
	group string
	srv   *remoting.Server
	addr  string

	mu       sync.Mutex
	logs     map[string][]protocol.RawMessage // subject -> messages
	cursor   map[string]int                   // subject|group -> next log index
	pullLogs map[string][]int                 // subject|group|consumer -> log indexes
	acks     []protocol.AckRequest
	pulls    []protocol.PullRequest // a long poll's repeats recorded once
	pullReqs map[string]int         // PULL_MESSAGE requests received, by subject
	sends    int                    // SEND_MESSAGE requests
	// failSend, if set, decides a per-message code (0 = store it).
	failSend func(m *protocol.Message) int32
	// failRemark, if set, is the remark of failSend's failures ("injected").
	failRemark string
	// sendStatus, if non-zero, answers every SEND_MESSAGE with this status.
	sendStatus int16
	// sendDelay delays every SEND_MESSAGE answer.
	sendDelay time.Duration
}

func startBroker(t *testing.T, group string, mc *meta.Client) *fakeBroker {
	t.Helper()
	b := &fakeBroker{t: t, group: group, logs: map[string][]protocol.RawMessage{}, cursor: map[string]int{}, pullLogs: map[string][]int{},
		pullReqs: map[string]int{}}
	b.srv = remoting.NewServer(remoting.ServerConfig{Addr: "127.0.0.1:0"})
	b.srv.Handle(protocol.CodeSendMessage, remoting.HandlerFunc(b.handleSend))
	b.srv.Handle(protocol.CodePullMessage, remoting.HandlerFunc(b.handlePull))
	b.srv.Handle(protocol.CodeAckRequest, remoting.HandlerFunc(b.handleAck))
	if err := b.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	b.addr = b.srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); b.srv.Close(); <-done })
	if err := mc.RegisterBroker(context.Background(), protocol.BrokerRegisterRequest{
		RequestType: protocol.BrokerRequestOnline, GroupName: group, BrokerAddress: b.addr, Role: protocol.RoleMaster, State: protocol.BrokerStateRW,
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *fakeBroker) handleSend(ctx context.Context, req *remoting.Request) protocol.Frame {
	msgs, err := protocol.DecodeMessages(req.Frame.Body, req.Frame.Header.Version, 0)
	if err != nil {
		return protocol.NewResponse(req.Frame.Header, protocol.CodeParamError, protocol.AppendErrorBody(nil, err.Error()))
	}
	b.mu.Lock()
	b.sends++
	status, delay, fail, remark := b.sendStatus, b.sendDelay, b.failSend, b.failRemark
	b.mu.Unlock()
	if remark == "" {
		remark = "injected"
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
	}
	if status != 0 {
		return protocol.NewResponse(req.Frame.Header, status, protocol.AppendErrorBody(nil, "injected failure"))
	}
	var failed []protocol.SendResult
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, rm := range msgs {
		if fail != nil {
			if code := fail(&rm.Message); code != 0 {
				failed = append(failed, protocol.SendResult{MessageID: rm.Message.MessageID, Code: code, Remark: remark})
				continue
			}
		}
		rm.Payload = slices.Clone(rm.Payload)
		b.logs[rm.Message.Subject] = append(b.logs[rm.Message.Subject], rm)
	}
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendSendResults(nil, failed))
}

func matchTags(f []protocol.PullFilter, tags []string) bool {
	for _, x := range f {
		if x.Type != protocol.PullFilterTag || len(x.Tags) == 0 {
			continue
		}
		switch x.TagType {
		case protocol.TagTypeOr:
			ok := false
			for _, t := range x.Tags {
				ok = ok || slices.Contains(tags, t)
			}
			if !ok {
				return false
			}
		case protocol.TagTypeAnd:
			for _, t := range x.Tags {
				if !slices.Contains(tags, t) {
					return false
				}
			}
		}
	}
	return true
}

func (b *fakeBroker) handlePull(ctx context.Context, req *remoting.Request) protocol.Frame {
	r, err := protocol.DecodePullRequest(req.Frame.Body, req.Frame.Header.Version)
	if err != nil {
		return protocol.NewResponse(req.Frame.Header, protocol.CodeParamError, nil)
	}
	deadline := time.Now().Add(time.Duration(r.TimeoutMillis) * time.Millisecond)
	cur := r.Subject + "|" + r.ConsumerGroup
	pl := cur + "|" + r.ConsumerID
	b.mu.Lock()
	b.pullReqs[r.Subject]++
	b.mu.Unlock()
	for {
		b.mu.Lock()
		if len(b.pulls) == 0 || b.pulls[len(b.pulls)-1].PullOffsetLast != r.PullOffsetLast {
			b.pulls = append(b.pulls, r)
		}
		log := b.pullLogs[pl]
		first := int64(len(log))
		var idx []int
		if r.PullOffsetLast+1 < int64(len(log)) {
			// Lost-ack redelivery: the consumer did not get what it pulled.
			first = r.PullOffsetLast + 1
			for i := first; i < int64(len(log)) && len(idx) < int(r.RequestNum); i++ {
				idx = append(idx, log[i])
			}
		} else {
			msgs := b.logs[r.Subject]
			for b.cursor[cur] < len(msgs) && len(idx) < int(r.RequestNum) {
				i := b.cursor[cur]
				b.cursor[cur]++
				if matchTags(r.Filters, msgs[i].Message.Tags) {
					idx = append(idx, i)
				}
			}
			b.pullLogs[pl] = append(log, idx...)
		}
		var payloads [][]byte
		for _, i := range idx {
			payloads = append(payloads, b.logs[r.Subject][i].Payload)
		}
		b.mu.Unlock()
		if len(payloads) > 0 {
			return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, protocol.AppendPullResponse(nil, first, payloads, req.Frame.Header.Version))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return protocol.NewResponse(req.Frame.Header, protocol.CodeNoMessage, nil)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (b *fakeBroker) handleAck(ctx context.Context, req *remoting.Request) protocol.Frame {
	a, err := protocol.DecodeAckRequest(req.Frame.Body, req.Frame.Header.Version)
	if err != nil {
		return protocol.NewResponse(req.Frame.Header, protocol.CodeParamError, nil)
	}
	b.mu.Lock()
	b.acks = append(b.acks, a)
	b.mu.Unlock()
	return protocol.NewResponse(req.Frame.Header, protocol.CodeSuccess, nil)
}

// stored returns the messages stored under subject.
func (b *fakeBroker) stored(subject string) []protocol.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []protocol.Message
	for _, rm := range b.logs[subject] {
		out = append(out, rm.Message)
	}
	return out
}

// ackRanges returns the non-heartbeat acks for subject.
func (b *fakeBroker) ackRanges(subject string) [][2]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [][2]int64
	for _, a := range b.acks {
		if a.Subject == subject && !a.IsHeartbeat() {
			out = append(out, [2]int64{a.PullOffsetBegin, a.PullOffsetLast})
		}
	}
	return out
}

func (b *fakeBroker) set(f func(b *fakeBroker)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(b)
}

func attr(m protocol.Message, key string) string {
	for _, a := range m.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}
