package client

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// ackEntry is one pulled message awaiting completion.
type ackEntry struct {
	q      *ackQueue
	offset int64
	done   bool
	tr     *msgTrace // the message's trace (tracing on), nil otherwise
}

type queueKey struct {
	subject     string // the subject pulled (the subscribed one or its retry subject)
	brokerGroup string
}

// ackQueue tracks the pulled messages of one (subject, broker group) in
// pull-log order and acknowledges completed prefixes with range ACKs, as
// QMQ's AckSendQueue: each ACK covers the contiguous run of completed
// messages after the last acked one. It also sends the heartbeat ack.
type ackQueue struct {
	c   *Consumer
	key queueKey
	m   *pullMetrics // of key.subject, for the puller too

	mu      sync.Mutex
	entries []*ackEntry   // pulled, not yet part of a completed prefix
	ranges  [][2]int64    // completed ranges not yet acknowledged, in order
	minPull int64         // first pull offset not acknowledged (-1 none yet)
	maxPull int64         // last pull offset received (-1 none yet)
	kick    chan struct{} // a range is ready to send now
	spans   []ackSpan     // ack spans of completed entries not yet acknowledged, in order (tracing on)

	sendMu   sync.Mutex // serialises ACK requests
	lastSent time.Time
}

func newAckQueue(c *Consumer, key queueKey) *ackQueue {
	return &ackQueue{c: c, key: key, m: c.m.pull(key.subject), minPull: -1, maxPull: -1, kick: make(chan struct{}, 1)}
}

// offsets returns PullOffsetBegin and PullOffsetLast for the next pull.
func (q *ackQueue) offsets() (int64, int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.minPull, q.maxPull
}

// add registers the ack entries of pulled messages (in offset order).
func (q *ackQueue) add(batch []Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.entries = slices.Grow(q.entries, len(batch))
	for i := range batch {
		e := &batch[i].ack
		off := e.offset
		if q.maxPull >= 0 && off != q.maxPull+1 {
			q.c.log.Debug("pulled offsets not contiguous", "subject", q.key.subject, "broker_group", q.key.brokerGroup, "last", q.maxPull, "new", off)
		}
		q.entries = append(q.entries, e)
		if q.minPull < 0 {
			q.minPull = off
		}
		q.maxPull = off
	}
}

// complete marks e done and moves the completed prefix into ranges.
func (q *ackQueue) complete(e *ackEntry) {
	q.mu.Lock()
	if e.done {
		q.mu.Unlock()
		return
	}
	e.done = true
	n := 0
	for n < len(q.entries) && q.entries[n].done {
		n++
	}
	if n == 0 {
		q.mu.Unlock()
		return
	}
	for _, x := range q.entries[:n] {
		if x.tr != nil && x.tr.ack != nil {
			q.spans = append(q.spans, ackSpan{offset: x.offset, span: x.tr.ack})
		}
		if k := len(q.ranges) - 1; k >= 0 && x.offset == q.ranges[k][1]+1 {
			q.ranges[k][1] = x.offset
		} else {
			q.ranges = append(q.ranges, [2]int64{x.offset, x.offset})
		}
	}
	clear(q.entries[:n])
	q.entries = q.entries[n:]
	if len(q.entries) == 0 {
		q.entries = nil
	}
	// QMQ sends at once when everything pulled is done or a batch's worth
	// is ready; otherwise the periodic flush sends it.
	r := q.ranges[0]
	sendNow := len(q.entries) == 0 || r[1]-r[0]+1 >= int64(q.c.cfg.pullBatch) || len(q.ranges) > 1
	q.mu.Unlock()
	if sendNow {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// flush sends the waiting ranges in order; with heartbeat set and nothing
// to send, a heartbeat ack instead.
func (q *ackQueue) flush(ctx context.Context, heartbeat bool) error {
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	for {
		q.mu.Lock()
		if len(q.ranges) == 0 {
			q.mu.Unlock()
			break
		}
		r := q.ranges[0]
		q.ranges = q.ranges[1:]
		q.mu.Unlock()
		if err := q.send(ctx, r[0], r[1]); err != nil {
			q.mu.Lock()
			if len(q.ranges) > 0 && q.ranges[0][0] == r[1]+1 {
				q.ranges[0][0] = r[0]
			} else {
				q.ranges = append([][2]int64{r}, q.ranges...)
			}
			q.mu.Unlock()
			return err
		}
		q.mu.Lock()
		if len(q.ranges) == 0 {
			q.ranges = nil
		}
		q.minPull = r[1] + 1
		q.mu.Unlock()
		heartbeat = false
	}
	if heartbeat {
		return q.send(ctx, -1, -1)
	}
	return nil
}

// send sends one ACK_REQUEST (begin < 0: heartbeat).
func (q *ackQueue) send(ctx context.Context, begin, last int64) error {
	c := q.c
	addr, err := c.brokerAddr(ctx, q.key)
	if err != nil {
		return err
	}
	conn, err := c.r.conn(ctx, addr)
	if err != nil {
		c.r.invalidate(c.routeKey(q.key.subject))
		return err
	}
	body := protocol.AppendAckRequest(nil, &protocol.AckRequest{
		Subject: q.key.subject, ConsumerGroup: c.group, ConsumerID: c.clientID,
		PullOffsetBegin: begin, PullOffsetLast: last, Broadcast: c.cfg.broadcast,
	}, protocol.CurrentVersion)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := conn.Call(cctx, protocol.CodeAckRequest, body)
	if err != nil {
		q.m.ackError.Inc()
		c.r.invalidate(c.routeKey(q.key.subject))
		return err
	}
	now := time.Now()
	q.m.ackTime.Observe(now.Sub(start).Seconds())
	if resp.Header.Code != protocol.CodeSuccess {
		q.m.ackError.Inc()
		c.r.invalidate(c.routeKey(q.key.subject))
		return &brokerError{op: "ACK", group: q.key.brokerGroup, status: resp.Header.Code, msg: protocol.DecodeErrorBody(resp.Body)}
	}
	q.lastSent = now
	if begin >= 0 {
		q.m.acked.Add(float64(last - begin + 1))
		if c.cfg.tracer.On() {
			q.endAckSpans(last)
		}
	}
	return nil
}

// loop sends acks when kicked, flushes partial prefixes every ackFlush and
// sends a heartbeat when nothing was sent for a heartbeat interval.
func (q *ackQueue) loop(ctx context.Context) {
	flush := time.NewTicker(q.c.cfg.ackFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.kick:
		case <-flush.C:
		}
		q.sendMu.Lock()
		hb := time.Since(q.lastSent) >= q.c.cfg.heartbeat
		q.sendMu.Unlock()
		if err := q.flush(ctx, hb); err != nil && ctx.Err() == nil {
			q.c.log.Warn("ack failed; will retry", "subject", q.key.subject, "broker_group", q.key.brokerGroup, "error", err)
		}
	}
}
