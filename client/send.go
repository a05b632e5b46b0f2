package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
)

// Per-message send result codes (QMQ's MessageProducerCode), as found in
// SendError.Code. CodeNoAnswer is ours: the message got no per-message
// answer (connection failure, timeout, a request-level refusal, no route).
const (
	CodeNoAnswer           int32 = -1
	CodeBrokerBusy               = protocol.SendBrokerBusy
	CodeDuplicate                = protocol.SendDuplicate
	CodeSubjectNotAssigned       = protocol.SendSubjectNotAssigned
	CodeBrokerReadOnly           = protocol.SendBrokerReadOnly
	CodeBlock                    = protocol.SendBlock
	CodeStoreError               = protocol.SendStoreError
)

// SendError is the failure of one message: the last answer it got after
// all its tries.
type SendError struct {
	Subject   string
	MessageID string
	Code      int32  // QMQ per-message code, or CodeNoAnswer
	Remark    string // the broker's remark, if any
	Group     string // broker group of the last try ("" if none)
	Tries     int
	Err       error // underlying error for CodeNoAnswer
}

func (e *SendError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "send %s/%s", e.Subject, e.MessageID)
	if e.Group != "" {
		fmt.Fprintf(&b, " (last broker group %s, %d tries)", e.Group, e.Tries)
	} else {
		fmt.Fprintf(&b, " (%d tries)", e.Tries)
	}
	if e.Code != CodeNoAnswer {
		fmt.Fprintf(&b, ": %s", protocol.SendCodeName(e.Code))
		if e.Remark != "" {
			fmt.Fprintf(&b, ": %s", e.Remark)
		}
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// BatchError is Send's error when some messages failed. errors.As(err,
// &sendErr) finds the first *SendError; Failed lists them all.
type BatchError struct{ Failed []*SendError }

func (e *BatchError) Error() string {
	if len(e.Failed) == 1 {
		return e.Failed[0].Error()
	}
	return fmt.Sprintf("%d messages failed; first: %v", len(e.Failed), e.Failed[0])
}

func (e *BatchError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// outgoing is one message being sent. It is encoded straight into each
// request's body (one copy of the bytes per try, no buffer per message).
type outgoing struct {
	m         *Message
	pm        *protocol.Message
	size      int // encoded size of pm
	key       routeKey
	tries     int
	lastGroup string
	err       *SendError // nil on success
	final     bool
	// diskFull lists the groups that refused the message because their disk
	// is full (protocol.RemarkDiskFull): it is not sent to them again.
	diskFull []string
	span     trace.Span // the send span (tracing on), ended with the outcome
}

func newOutgoing(m *Message, now time.Time) (*outgoing, error) {
	pm, err := m.toWire(now)
	if err != nil {
		return nil, err
	}
	size, err := protocol.EncodedMessageSize(pm)
	if err != nil {
		return nil, err
	}
	ct := protocol.ClientTypeProducer
	if m.isDelay(now) {
		ct = protocol.ClientTypeDelayProducer
	}
	return &outgoing{m: m, pm: pm, size: size, key: routeKey{clientType: ct, subject: m.subject}}, nil
}

// Circuit breaker: a group with breakerThreshold consecutive failures is
// skipped for breakerOpenFor (unless every group is skipped).
const (
	breakerThreshold = 3
	breakerOpenFor   = 10 * time.Second
	maxRequestBytes  = 16 << 20
)

type breaker struct {
	failures  int
	openUntil time.Time
}

// sender sends messages with QMQ's producer semantics: pick a group (random
// first, then round robin), skip tripped groups, retry failures on the
// next group, duplicates count as success, BLOCK is final.
type sender struct {
	r        *router
	log      hclog.Logger
	timeout  time.Duration
	maxTries int
	rtt      observer // SEND_MESSAGE round trips

	mu       sync.Mutex
	rr       map[routeKey]uint64
	breakers map[string]*breaker

	// bodies recycles SEND_MESSAGE request bodies: remoting writes a body
	// before Call returns and keeps no reference to it.
	bodies sync.Pool
}

func newSender(r *router, log hclog.Logger, timeout time.Duration, maxTries int) *sender {
	if maxTries < 1 {
		maxTries = 1
	}
	return &sender{r: r, log: log, timeout: timeout, maxTries: maxTries, rtt: nop{}, rr: map[routeKey]uint64{}, breakers: map[string]*breaker{}}
}

func (s *sender) tripped(group string, now time.Time) bool {
	b := s.breakers[group]
	return b != nil && now.Before(b.openUntil)
}

func (s *sender) record(group string, ok bool, tripNow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.breakers[group]
	if b == nil {
		b = &breaker{}
		s.breakers[group] = b
	}
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if tripNow || b.failures >= breakerThreshold {
		now := time.Now()
		if !now.Before(b.openUntil) {
			s.log.Warn("broker group circuit breaker open: skipping the group", "group", group, "for", breakerOpenFor, "consecutive_failures", b.failures)
		}
		b.openUntil = now.Add(breakerOpenFor)
	}
}

// pick chooses the group for key, avoiding avoid (the group of the last
// failed try) and tripped groups when possible.
func (s *sender) pick(key routeKey, groups []protocol.BrokerGroupInfo, avoid string) protocol.BrokerGroupInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.rr[key]
	if !ok {
		c = rand.Uint64N(uint64(len(groups)))
	}
	s.rr[key] = c + 1
	n := uint64(len(groups))
	now := time.Now()
	for _, skipTripped := range []bool{true, false} {
		for i := uint64(0); i < n; i++ {
			g := groups[(c+i)%n]
			if n > 1 && g.Name == avoid {
				continue
			}
			if skipTripped && s.tripped(g.Name, now) {
				continue
			}
			return g
		}
	}
	return groups[c%n]
}

type groupBatch struct {
	group protocol.BrokerGroupInfo
	items []*outgoing
}

// send delivers items, each getting up to maxTries attempts. On return
// every item has err == nil (sent) or its final *SendError.
func (s *sender) send(ctx context.Context, items []*outgoing, perRequest int) {
	pending := items
	retry := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second}
	for round := 0; len(pending) > 0; round++ {
		if round > 0 {
			_ = retry.Wait(ctx) // ctx's end is handled just below
		}
		if err := ctx.Err(); err != nil {
			for _, it := range pending {
				it.fail(CodeNoAnswer, "", it.lastGroup, err)
			}
			return
		}
		// Route and assign groups, one pick per subject per round.
		type choice struct {
			g   protocol.BrokerGroupInfo
			err error
		}
		batches := map[string]*groupBatch{}
		var order []string
		picked := map[routeKey]choice{}
		for _, it := range pending {
			ch, ok := picked[it.key]
			if !ok {
				groups, err := s.r.groups(ctx, it.key)
				if err == nil && len(groups) == 0 {
					err = s.r.noBroker(it.key)
				}
				if err == nil {
					ch.g = s.pick(it.key, groups, it.lastGroup)
				}
				ch.err = err
				picked[it.key] = ch
			}
			if ch.err != nil {
				if len(it.diskFull) > 0 {
					// The route no longer offers a group (the full ones turned
					// read-only): the disk-full refusal is the reason to report.
					it.final = true
					continue
				}
				it.tries++
				it.fail(CodeNoAnswer, "", "", ch.err)
				continue
			}
			g := ch.g
			if slices.Contains(it.diskFull, g.Name) {
				others := s.groupsExcept(ctx, it.key, it.diskFull)
				if len(others) == 0 {
					it.final = true // every group it could go to is full: fail now, with the reason
					continue
				}
				g = s.pick(it.key, others, it.lastGroup)
			}
			b := batches[g.Name]
			if b == nil {
				b = &groupBatch{group: g}
				batches[g.Name] = b
				order = append(order, g.Name)
			}
			b.items = append(b.items, it)
		}
		type request struct {
			g     protocol.BrokerGroupInfo
			items []*outgoing
		}
		var reqs []request
		for _, name := range order {
			b := batches[name]
			for len(b.items) > 0 {
				n, size := 0, 0
				for n < len(b.items) && (n == 0 || n < perRequest && size+b.items[n].size <= maxRequestBytes) {
					size += b.items[n].size
					n++
				}
				reqs = append(reqs, request{b.group, b.items[:n]})
				b.items = b.items[n:]
			}
		}
		if len(reqs) == 1 {
			// The common case (one subject, or one group): send from this
			// goroutine. A goroutine per request put a scheduler hand-off and
			// a fresh stack, grown on every call, on each send's latency
			// (issue 19: the e2e median at 10k msg/s).
			s.sendTo(ctx, reqs[0].g, reqs[0].items)
		} else {
			var wg sync.WaitGroup
			for _, r := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.sendTo(ctx, r.g, r.items)
				}()
			}
			wg.Wait()
		}
		var next []*outgoing
		for _, it := range pending {
			if !it.final && it.err != nil && it.tries < s.maxTries {
				next = append(next, it)
			}
		}
		pending = next
	}
}

func (it *outgoing) fail(code int32, remark, group string, err error) {
	it.err = &SendError{Subject: it.m.subject, MessageID: it.m.id, Code: code, Remark: remark, Group: group, Tries: it.tries, Err: err}
}

// sendTo sends one SEND_MESSAGE request and records each item's outcome.
func (s *sender) sendTo(ctx context.Context, g protocol.BrokerGroupInfo, items []*outgoing) {
	for _, it := range items {
		it.tries++
		it.lastGroup = g.Name
	}
	failAll := func(err error) {
		for _, it := range items {
			it.fail(CodeNoAnswer, "", g.Name, err)
		}
	}
	conn, err := s.r.conn(ctx, g.MasterAddress)
	if err != nil {
		s.record(g.Name, false, false)
		s.r.invalidate(items[0].key)
		failAll(fmt.Errorf("broker group %s (%s): %w", g.Name, g.MasterAddress, err))
		return
	}
	size := 0
	for _, it := range items {
		size += it.size
	}
	bp, _ := s.bodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer s.bodies.Put(bp)
	body := slices.Grow((*bp)[:0], size)
	for _, it := range items {
		var err error
		if body, err = protocol.AppendMessage(body, it.pm); err != nil {
			failAll(err) // validated in newOutgoing: cannot happen
			return
		}
	}
	*bp = body
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	start := time.Now()
	resp, err := conn.Call(cctx, protocol.CodeSendMessage, body)
	s.rtt.Observe(time.Since(start).Seconds())
	cancel()
	if err != nil {
		s.record(g.Name, false, false)
		s.r.invalidate(items[0].key)
		failAll(err)
		return
	}
	if resp.Header.Code != protocol.CodeSuccess {
		msg := protocol.DecodeErrorBody(resp.Body)
		err := fmt.Errorf("broker group %s answered %s: %s", g.Name, protocol.CodeName(resp.Header.Code, true), msg)
		s.record(g.Name, false, resp.Header.Code == protocol.CodeBrokerReject)
		s.r.invalidate(items[0].key)
		failAll(err)
		return
	}
	results, err := protocol.DecodeSendResults(resp.Body)
	if err != nil {
		s.record(g.Name, false, false)
		failAll(err)
		return
	}
	// A BROKER_BUSY answer counts against the group's breaker: a master
	// whose slave does not confirm writes (wait.slave.wrote) answers every
	// send that way after its timeout, and three in a row send the producer
	// to the other groups for a while instead of waiting on each send.
	busy := false
	byID := make(map[string]protocol.SendResult, len(results))
	for _, r := range results {
		byID[r.MessageID] = r
		busy = busy || r.Code == protocol.SendBrokerBusy
	}
	s.record(g.Name, !busy, false)
	for _, it := range items {
		r, ok := byID[it.m.id]
		if !ok || r.Code == protocol.SendSuccess || r.Code == protocol.SendDuplicate {
			it.err = nil
			it.final = true
			continue
		}
		it.fail(r.Code, r.Remark, g.Name, nil)
		switch r.Code {
		case protocol.SendBlock:
			it.final = true
		case protocol.SendBrokerReadOnly, protocol.SendSubjectNotAssigned:
			s.r.invalidate(it.key)
			if r.Code == protocol.SendBrokerReadOnly {
				s.record(g.Name, false, true)
				if protocol.IsDiskFullRemark(r.Remark) && !slices.Contains(it.diskFull, g.Name) {
					it.diskFull = append(it.diskFull, g.Name)
				}
			}
		}
	}
}

// groupsExcept is key's route without the groups in skip (nil on a routing
// error: the caller then reports what it has).
func (s *sender) groupsExcept(ctx context.Context, key routeKey, skip []string) []protocol.BrokerGroupInfo {
	groups, err := s.r.groups(ctx, key)
	if err != nil {
		return nil
	}
	var out []protocol.BrokerGroupInfo
	for _, g := range groups {
		if !slices.Contains(skip, g.Name) {
			out = append(out, g)
		}
	}
	return out
}

// errOf returns the item's outcome as an error (nil on success).
func (it *outgoing) errOf() error {
	if it.err == nil {
		return nil
	}
	return it.err
}
