package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

const (
	maxRequestNum = 10000    // QMQ caps requestNum at 10,000
	maxPullBytes  = 16 << 20 // a response stops growing past this (one message always fits)
	maxScan       = 20000    // consumer-log entries examined per attempt (filters can skip many)
)

// cursorKey names a cursor: a group's shared one (consumer ""), or a
// broadcast consumer's own.
type cursorKey struct{ subject, group, consumer string }

// cursor is the next consumer-log sequence to hand out. Its mutex also
// serializes the pulls of the group (QMQ: one actor per subject+group).
type cursor struct {
	mu   chan struct{} // a lock that a waiting pull can give up on (ctx)
	init bool
	next int64
}

func (s *instance) cursorFor(k cursorKey) *cursor {
	s.cursorsMu.Lock()
	defer s.cursorsMu.Unlock()
	c := s.cursors[k]
	if c == nil {
		c = &cursor{mu: make(chan struct{}, 1)}
		s.cursors[k] = c
	}
	return c
}

func (c *cursor) lock(ctx context.Context) bool {
	select {
	case c.mu <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *cursor) unlock() { <-c.mu }

// pullParams is a validated pull request.
type pullParams struct {
	*protocol.PullRequest
	broadcast bool
	version   int16
	retry     bool // a retry subject: entries are held back for the retry delay
}

func badPart(s string) bool { return strings.ContainsAny(s, "/\r\n") }

// consumerNames checks a pull's, ack's or reset's subject and group with
// the one rule for names (package protocol/names). A broadcast consumer's
// group is its client id (QMQ), which is not a group name: badPart covers it.
func consumerNames(subject, group string, broadcast bool) error {
	if err := names.WireSubject(subject); err != nil {
		return err
	}
	if broadcast {
		return nil
	}
	return names.Group(group)
}

func (s *instance) handlePull(ctx context.Context, req *remoting.Request) protocol.Frame {
	if f, refused := s.refuseUnlessMaster(); refused {
		return f
	}
	start := time.Now()
	r, err := protocol.DecodePullRequest(req.Frame.Body, req.Frame.Header.Version)
	if err != nil {
		return errorFrame(protocol.CodeParamError, "%v", err)
	}
	p := pullParams{PullRequest: &r, version: req.Frame.Header.Version}
	if r.ConsumerGroup == "" {
		// QMQ: a consumer without a group is a broadcast consumer whose group is its id.
		r.ConsumerGroup, p.broadcast = r.ConsumerID, true
	}
	p.broadcast = p.broadcast || r.Broadcast
	nameErr := consumerNames(r.Subject, r.ConsumerGroup, p.broadcast)
	switch {
	case r.Subject == "" || r.ConsumerID == "":
		return errorFrame(protocol.CodeParamError, "PULL_MESSAGE needs a subject, a consumer group and a consumer id (got subject %q, group %q, consumer %q)", r.Subject, r.ConsumerGroup, r.ConsumerID)
	case badPart(r.Subject) || badPart(r.ConsumerGroup) || badPart(r.ConsumerID):
		return errorFrame(protocol.CodeParamError, "PULL_MESSAGE subject, group and consumer id must not contain '/', CR or LF")
	case nameErr != nil:
		return errorFrame(protocol.CodeParamError, "PULL_MESSAGE refused: %v", nameErr)
	case r.RequestNum <= 0:
		return errorFrame(protocol.CodeParamError, "PULL_MESSAGE requestNum must be positive, got %d", r.RequestNum)
	}
	r.RequestNum = min(r.RequestNum, maxRequestNum)
	p.retry = strings.HasPrefix(r.Subject, protocol.RetryPrefix)
	if !p.broadcast {
		// A consumer parked in a long poll is alive: mark it at the start, on
		// every wake-up and when the poll returns, so a poll longer than
		// subscriber.offline.timeout.ms cannot make it look silent.
		s.subs.seen(r.Subject, r.ConsumerGroup, r.ConsumerID)
		defer s.subs.seen(r.Subject, r.ConsumerGroup, r.ConsumerID)
	}
	var deadline time.Time
	if r.TimeoutMillis > 0 {
		deadline = start.Add(time.Duration(r.TimeoutMillis) * time.Millisecond)
	}
	idle := 0
	for {
		changed := s.store.Changed(r.Subject)
		res, err := s.pullOnce(ctx, &p)
		if err == nil && res.startRecorded > 0 {
			s.waitSlaveHasStart(ctx, r.Subject, r.ConsumerGroup, res.startRecorded)
		}
		if err != nil {
			if ctx.Err() != nil || s.bgCtx.Err() != nil {
				return protocol.Frame{Header: protocol.Header{Code: protocol.CodeNoMessage}}
			}
			s.log.Error("pull failed", "subject", r.Subject, "group", r.ConsumerGroup, "consumer", r.ConsumerID, "error", err)
			return errorFrame(protocol.CodeBrokerError, "pull failed: %v", err)
		}
		if res.n > 0 {
			s.m.pulled.Add(float64(res.n))
			s.m.pullLatency.Observe(time.Since(start).Seconds())
			return protocol.Frame{Body: res.body}
		}
		if res.more {
			continue // a scan limit was hit with nothing kept: look further at once
		}
		now := time.Now()
		if deadline.IsZero() || !now.Before(deadline) {
			return protocol.Frame{Header: protocol.Header{Code: protocol.CodeNoMessage}}
		}
		wait := deadline.Sub(now)
		if !res.wakeAt.IsZero() {
			wait = min(wait, max(res.wakeAt.Sub(now), time.Millisecond))
		}
		if idle++; idle > 100 {
			wait = min(wait, 50*time.Millisecond) // the change channel keeps firing without news: slow down
			changed = nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
		case <-s.bgCtx.Done():
		}
		t.Stop()
		if ctx.Err() != nil || s.bgCtx.Err() != nil {
			return protocol.Frame{Header: protocol.Header{Code: protocol.CodeNoMessage}}
		}
		if !p.broadcast {
			s.subs.seen(r.Subject, r.ConsumerGroup, r.ConsumerID)
		}
	}
}

// pullResult is one attempt's outcome.
type pullResult struct {
	body   []byte    // response body when n > 0
	n      int       // messages in body
	more   bool      // nothing kept, but the scan stopped early: try again at once
	wakeAt time.Time // a retry-subject entry becomes deliverable then
	// startRecorded is the action log's end after the RESET recording where
	// a new group starts (0: none written by this attempt).
	startRecorded int64
}

// pullOnce serves one attempt under the group's (or broadcast consumer's) lock.
func (s *instance) pullOnce(ctx context.Context, p *pullParams) (pullResult, error) {
	key := cursorKey{subject: p.Subject, group: p.ConsumerGroup}
	if p.broadcast {
		key.consumer = p.ConsumerID
	}
	c := s.cursorFor(key)
	if !c.lock(ctx) {
		return pullResult{}, ctx.Err()
	}
	defer c.unlock()

	var prog pulllog.ConsumerProgress
	var known bool
	s.store.PullLog(func(t *pulllog.Table) { prog, known = t.Consumer(p.Subject, p.ConsumerGroup, p.ConsumerID) })
	if !known {
		prog = pulllog.ConsumerProgress{PullSeq: -1, AckSeq: -1}
	}
	if !p.broadcast {
		if res, ok := s.redeliver(p, prog); ok {
			return res, nil
		}
	}
	var res pullResult
	if !c.init {
		next, isNew := s.startSequence(p, prog, known)
		if isNew {
			// Record the start before answering, durably and (with
			// wait.slave.wrote) on the slave: without it a restart or a
			// failover would start the group at the newest message again
			// and it would never get what was sent in between. The cursor
			// lock makes concurrent first pulls of the group write it once.
			end, err := s.store.ApplyActionsDurable([]actionlog.Action{{Type: actionlog.Reset, Subject: p.Subject, Group: p.ConsumerGroup,
				ConsumerID: p.ConsumerID, Timestamp: time.Now().UnixMilli(), Broadcast: p.broadcast, LastMsgSeq: next - 1}})
			if err != nil {
				return pullResult{}, fmt.Errorf("record where new consumer group %q of %q starts (sequence %d): %w", p.ConsumerGroup, p.Subject, next, err)
			}
			res.startRecorded = end
		}
		c.next = next
		c.init = true
		s.log.Debug("cursor initialised", "subject", p.Subject, "group", p.ConsumerGroup, "consumer", key.consumer, "next", c.next)
	}
	if minSeq := s.store.MinSequence(p.Subject); c.next < minSeq {
		c.next = minSeq // retention removed what the cursor pointed at
	}
	maxSeq := s.store.MaxSequence(p.Subject)
	if c.next > maxSeq {
		return res, nil
	}

	var (
		body    = protocol.AppendPullResponseHeader(make([]byte, 0, 64), 0)
		msgSeqs = make([]int64, 0, min(int64(p.RequestNum), maxSeq-c.next+1))
		scanned = c.next
		now     = time.Now()
		filter  = s.pullFilter(p)
	)
scan:
	for seq := c.next; seq <= maxSeq && len(msgSeqs) < int(p.RequestNum) && seq-c.next < maxScan; seq++ {
		rec, err := s.store.Read(p.Subject, seq)
		if errors.Is(err, storage.ErrNotFound) {
			scanned = seq + 1
			continue
		}
		if err != nil {
			if len(msgSeqs) == 0 {
				return pullResult{}, err
			}
			break
		}
		if p.retry && s.settings.RetryDelay > 0 {
			if at := time.UnixMilli(rec.Timestamp).Add(s.settings.RetryDelay); at.After(now) {
				rec.Release()
				res.wakeAt = at
				break scan
			}
		}
		keep := filter.keep(rec.Payload)
		switch {
		case !keep && p.broadcast && len(msgSeqs) > 0:
			// A broadcast response must hold consecutive sequences: stop here.
			rec.Release()
			break scan
		case !keep:
			s.m.filtered.Inc()
		case len(msgSeqs) > 0 && len(body)+len(rec.Payload) > maxPullBytes:
			rec.Release()
			break scan
		default:
			if len(msgSeqs) == 0 {
				// Size the response once from the first message: growing it by
				// doubling would allocate twice its size in garbage per pull.
				want := min(int64(p.RequestNum), maxSeq-seq+1) * int64(len(rec.Payload)+8)
				body = slices.Grow(body, int(min(want, maxPullBytes)))
			}
			body = protocol.AppendPulledPayload(body, rec.Payload, p.version)
			msgSeqs = append(msgSeqs, seq)
		}
		rec.Release()
		scanned = seq + 1
	}
	if len(msgSeqs) == 0 {
		res.more = scanned-c.next >= maxScan
		c.next = scanned
		return res, nil
	}

	var first int64
	var actions []actionlog.Action
	ts := now.UnixMilli()
	if p.broadcast {
		first = msgSeqs[0]
		last := msgSeqs[len(msgSeqs)-1]
		actions = []actionlog.Action{{Type: actionlog.Pull, Subject: p.Subject, Group: p.ConsumerGroup, ConsumerID: p.ConsumerID,
			Timestamp: ts, Broadcast: true, FirstPullSeq: first, LastPullSeq: last, FirstMsgSeq: first, LastMsgSeq: last}}
	} else {
		first = prog.PullSeq + 1
		pull := first
		for i := 0; i < len(msgSeqs); {
			j := i + 1
			for j < len(msgSeqs) && msgSeqs[j] == msgSeqs[j-1]+1 {
				j++
			}
			n := int64(j - i)
			actions = append(actions, actionlog.Action{Type: actionlog.Pull, Subject: p.Subject, Group: p.ConsumerGroup, ConsumerID: p.ConsumerID,
				Timestamp: ts, FirstPullSeq: pull, LastPullSeq: pull + n - 1, FirstMsgSeq: msgSeqs[i], LastMsgSeq: msgSeqs[j-1]})
			pull += n
			i = j
		}
	}
	if err := s.store.ApplyActions(actions); err != nil {
		return pullResult{}, err
	}
	c.next = scanned
	binary.BigEndian.PutUint64(body, uint64(first))
	return pullResult{body: body, n: len(msgSeqs), startRecorded: res.startRecorded}, nil
}

// startSequence is where a cursor starts when first used since start-up;
// isNew reports a group (or broadcast consumer) seen for the first time,
// whose start the caller must record.
func (s *instance) startSequence(p *pullParams, prog pulllog.ConsumerProgress, known bool) (next int64, isNew bool) {
	if p.broadcast {
		if known {
			// Pull sequence == consumer-log sequence; PullSeq is -1 after a
			// RESET on an empty subject.
			return prog.PullSeq + 1, false
		}
		s.log.Info("new broadcast consumer starts at the latest message", "subject", p.Subject, "consumer", p.ConsumerID)
		return s.store.MaxSequence(p.Subject) + 1, true
	}
	var maxPulled int64
	var ok bool
	s.store.PullLog(func(t *pulllog.Table) { maxPulled, ok = t.GroupMaxPulledMsgSeq(p.Subject, p.ConsumerGroup) })
	switch {
	case ok:
		return maxPulled + 1, false
	case p.retry:
		// Everything in a retry subject is for its group: start at the
		// oldest. Nothing to record: after a restart or a failover the
		// oldest is still the right start.
		return s.store.MinSequence(p.Subject), false
	default:
		// QMQ: a new group starts with the messages that arrive from now on.
		s.log.Info("new consumer group starts at the latest message", "subject", p.Subject, "group", p.ConsumerGroup)
		return s.store.MaxSequence(p.Subject) + 1, true
	}
}

// waitSlaveHasStart holds the first answer to a new group until the slave
// has copied the record of where the group starts, when the group runs
// with wait.slave.wrote (as sends do): a failover right after it then
// keeps the start. A slave that does not confirm within
// wait.slave.wrote.timeout.ms is logged, not fatal: the start is on the
// master's disk and reaches the slave when it catches up.
func (s *instance) waitSlaveHasStart(ctx context.Context, subject, group string, actionLogEnd int64) {
	r := s.replica.Load()
	if !s.settings.WaitSlaveWrote || r == nil || r.master == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.settings.SlaveWroteTimeout)
	defer cancel()
	if err := r.master.WaitSlaveWroteActions(ctx, actionLogEnd); err != nil {
		s.log.Warn("the slave has not confirmed the recorded start of a consumer group: if this master fails before the slave copies it, the group starts elsewhere there (a new group at the newest message)",
			"subject", subject, "group", group, "error", err)
	}
}

// redeliverRecheck is how soon a redelivery held back for the consumer's
// ack (see redeliver) is tried again within a long poll.
const redeliverRecheck = 50 * time.Millisecond

// redeliver re-sends what the consumer was handed but says it never got:
// its last pull offset is behind the broker's pull sequence for it.
//
// The entries are filtered again with the consumer's current filters (tags,
// sub-environment), as QMQ does: a new release of the consumer may have
// changed its tags. Responses hold consecutive pull offsets, so a filtered entry ends a
// response; leading entries that are filtered out (or whose message is
// gone) are acknowledged here, so that the consumer's ack of what follows
// does not jump over them (which would move them to the retry subject).
// That ack must continue the consumer's own: while it still holds unacked
// entries before them, the redelivery waits for its ack (QMQ clients ack
// every completed prefix, so the wait is as long as its processing).
func (s *instance) redeliver(p *pullParams, prog pulllog.ConsumerProgress) (pullResult, bool) {
	consumerLast := max(p.PullOffsetLast, prog.AckSeq)
	if prog.PullSeq <= consumerLast {
		return pullResult{}, false
	}
	filter := s.pullFilter(p)
	body := protocol.AppendPullResponseHeader(make([]byte, 0, 4096), 0)
	first, n := int64(-1), 0
	skipTo, filtered := int64(-1), 0 // leading entries not delivered: the last one, and how many a filter dropped
	for seq := consumerLast + 1; seq <= prog.PullSeq && n < int(p.RequestNum) && len(body) < maxPullBytes; seq++ {
		var msgSeq int64
		var ok bool
		s.store.PullLog(func(t *pulllog.Table) { msgSeq, ok = t.Lookup(p.Subject, p.ConsumerGroup, p.ConsumerID, seq) })
		var rec interface{ Release() }
		var payload []byte
		if ok {
			r, err := s.store.Read(p.Subject, msgSeq)
			if err != nil {
				ok = false
			} else {
				rec, payload = r, r.Payload
			}
		}
		keep := ok && filter.keep(payload)
		if ok && !keep {
			rec.Release()
			s.m.filtered.Inc()
		}
		if !keep {
			if first >= 0 {
				break // responses hold consecutive pull offsets
			}
			skipTo = seq // deleted, acked meanwhile, or filtered out: skip to the next
			if ok {
				filtered++
			}
			continue
		}
		if first < 0 {
			first = seq
		}
		body = protocol.AppendPulledPayload(body, payload, p.version)
		rec.Release()
		n++
	}
	if filtered > 0 {
		if consumerLast != prog.AckSeq {
			// The consumer holds entries up to consumerLast that it has not
			// acked: acknowledging the filtered ones now would jump over them.
			return pullResult{wakeAt: time.Now().Add(redeliverRecheck)}, true
		}
		err := s.store.ApplyActions([]actionlog.Action{{Type: actionlog.RangeAck, Subject: p.Subject, Group: p.ConsumerGroup, ConsumerID: p.ConsumerID,
			Timestamp: time.Now().UnixMilli(), FirstPullSeq: consumerLast + 1, LastPullSeq: skipTo}})
		if err != nil {
			s.log.Error("acknowledging redelivered messages the consumer's filters drop failed", "subject", p.Subject, "group", p.ConsumerGroup,
				"consumer", p.ConsumerID, "error", err)
			return pullResult{wakeAt: time.Now().Add(redeliverRecheck)}, true
		}
		s.log.Info("unacked messages no longer match the consumer's filters: acknowledged without redelivery", "subject", p.Subject,
			"group", p.ConsumerGroup, "consumer", p.ConsumerID, "pull_offsets", fmt.Sprintf("%d..%d", consumerLast+1, skipTo), "filtered", filtered)
	}
	if n == 0 {
		return pullResult{}, false
	}
	s.log.Warn("consumer lost a pull response: redelivering", "subject", p.Subject, "group", p.ConsumerGroup, "consumer", p.ConsumerID,
		"consumer_last", p.PullOffsetLast, "broker_pull_seq", prog.PullSeq, "messages", n)
	s.m.redelivered.Add(float64(n))
	binary.BigEndian.PutUint64(body, uint64(first))
	return pullResult{body: body, n: n}, true
}

// tagFilter is one TAG filter that actually filters.
type tagFilter struct {
	and  bool
	tags [][]byte
}

func tagFilters(fs []protocol.PullFilter) []tagFilter {
	var out []tagFilter
	for _, f := range fs {
		if f.Type != protocol.PullFilterTag || len(f.Tags) == 0 || (f.TagType != protocol.TagTypeOr && f.TagType != protocol.TagTypeAnd) {
			continue
		}
		tf := tagFilter{and: f.TagType == protocol.TagTypeAnd}
		for _, t := range f.Tags {
			tf.tags = append(tf.tags, []byte(t))
		}
		out = append(out, tf)
	}
	return out
}

// matchTags applies every tag filter to a stored payload: OR keeps a
// message having any of the tags, AND one having all of them; a message
// without tags never matches a filter (QMQ §2.8).
func matchTags(fs []tagFilter, payload []byte) bool {
	for _, f := range fs {
		matched := 0
		for _, want := range f.tags {
			found := false
			protocol.PayloadTags(payload, func(tag []byte) bool {
				found = bytes.Equal(tag, want)
				return !found
			})
			if found {
				matched++
				if !f.and {
					break
				}
			} else if f.and {
				return false
			}
		}
		if matched == 0 {
			return false
		}
	}
	return true
}
