package broker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// subscribers tracks when each (non-broadcast) consumer was last heard from
// and moves the unacked messages of silent ones to their retry subject
// (QMQ's SubscriberStatusChecker + RetryTask).
type subscribers struct {
	s        *Server
	mu       sync.Mutex
	lastSeen map[pulllog.ConsumerKey]time.Time
	limiter  *limiter
}

func newSubscribers(s *Server) *subscribers {
	sb := &subscribers{s: s, lastSeen: make(map[pulllog.ConsumerKey]time.Time), limiter: newLimiter(s.settings.RetryLimit)}
	// Consumers known from before a restart get a full timeout to come back.
	now := time.Now()
	s.store.PullLog(func(t *pulllog.Table) {
		for _, g := range t.Groups() {
			if b, _ := t.IsBroadcast(g.Subject, g.Group); b {
				continue
			}
			for _, id := range t.Consumers(g.Subject, g.Group) {
				sb.lastSeen[pulllog.ConsumerKey{Subject: g.Subject, Group: g.Group, ConsumerID: id}] = now
			}
		}
	})
	return sb
}

func (sb *subscribers) seen(subject, group, consumerID string) {
	k := pulllog.ConsumerKey{Subject: subject, Group: group, ConsumerID: consumerID}
	now := time.Now()
	sb.mu.Lock()
	if _, ok := sb.lastSeen[k]; !ok {
		k = pulllog.ConsumerKey{Subject: strings.Clone(subject), Group: strings.Clone(group), ConsumerID: strings.Clone(consumerID)}
	}
	sb.lastSeen[k] = now
	sb.mu.Unlock()
}

func (sb *subscribers) run(ctx context.Context) {
	every := max(sb.s.settings.OfflineTimeout/4, 20*time.Millisecond)
	for sleep(ctx, every) {
		sb.check(ctx)
	}
}

// check moves messages of offline consumers and entries skipped by acks.
func (sb *subscribers) check(ctx context.Context) {
	s := sb.s
	cutoff := time.Now().Add(-s.settings.OfflineTimeout)
	var offline []pulllog.ConsumerKey
	sb.mu.Lock()
	for k, t := range sb.lastSeen {
		if t.Before(cutoff) {
			offline = append(offline, k)
		}
	}
	sb.mu.Unlock()
	for _, k := range offline {
		if ctx.Err() != nil {
			return
		}
		var runs []pulllog.Run
		var prog pulllog.ConsumerProgress
		s.store.PullLog(func(t *pulllog.Table) {
			runs = t.Unacked(k.Subject, k.Group, k.ConsumerID)
			prog, _ = t.Consumer(k.Subject, k.Group, k.ConsumerID)
		})
		if len(runs) == 0 {
			continue
		}
		s.log.Warn("consumer offline: moving its unacked messages to the retry subject", "subject", k.Subject, "group", k.Group,
			"consumer", k.ConsumerID, "silent_for", s.settings.OfflineTimeout, "pulled", prog.PullSeq, "acked", prog.AckSeq)
		if last, ok := sb.moveRuns(ctx, k, runs); ok || last > prog.AckSeq {
			_ = s.store.ApplyActions([]actionlog.Action{{Type: actionlog.RangeAck, Subject: k.Subject, Group: k.Group, ConsumerID: k.ConsumerID,
				Timestamp: time.Now().UnixMilli(), FirstPullSeq: prog.AckSeq + 1, LastPullSeq: max(last, prog.AckSeq+1)}})
		}
	}
	var skipped []pulllog.ConsumerKey
	s.store.PullLog(func(t *pulllog.Table) { skipped = t.ConsumersWithSkipped() })
	for _, k := range skipped {
		var runs []pulllog.Run
		s.store.PullLog(func(t *pulllog.Table) { runs = t.TakeSkipped(k.Subject, k.Group, k.ConsumerID) })
		if len(runs) > 0 {
			s.log.Info("an ack skipped messages: moving them to the retry subject", "subject", k.Subject, "group", k.Group, "consumer", k.ConsumerID)
			sb.moveRuns(ctx, k, runs)
		}
	}
}

// moveRuns re-appends the messages of runs to the consumer's retry subject,
// rate-limited. It returns the last pull sequence handled and whether all were.
func (sb *subscribers) moveRuns(ctx context.Context, k pulllog.ConsumerKey, runs []pulllog.Run) (int64, bool) {
	s := sb.s
	target := retrySubject(k.Subject, k.Group)
	last := int64(-1)
	for _, r := range runs {
		for i := int64(0); i < r.Count; i++ {
			if !sb.limiter.wait(ctx) {
				return last, false
			}
			msgSeq := r.FirstMsgSeq + i
			rec, err := s.store.Read(k.Subject, msgSeq)
			if err == nil {
				payload := retryPayload(rec.Payload, target)
				rec.Release()
				if _, err = s.store.Append(ctx, []messagelog.Message{{Subject: target, Payload: payload}}); err != nil {
					s.log.Error("moving a message to its retry subject failed; will try again", "subject", k.Subject, "sequence", msgSeq, "error", err)
					return last, false
				}
				s.m.movedRetry.Inc()
			}
			// A message retention deleted is gone: nothing to move.
			last = r.FirstPullSeq + i
		}
	}
	return last, true
}

// retrySubject is %RETRY%<subject>%<group>; a retry subject stays itself.
func retrySubject(subject, group string) string {
	if strings.HasPrefix(subject, retryPrefix) {
		return subject
	}
	return retryPrefix + subject + "%" + group
}

// retryPayload rewrites a stored payload for its retry subject: subject
// replaced, qmq_times incremented (2 if absent). A payload that does not
// decode is re-appended as it is.
func retryPayload(payload []byte, subject string) []byte {
	m, err := protocol.DecodePayload(payload)
	if err != nil {
		return append([]byte(nil), payload...)
	}
	m.Subject = subject
	found := false
	for i := range m.Attrs {
		if m.Attrs[i].Key == "qmq_times" {
			n, _ := strconv.Atoi(m.Attrs[i].Value)
			m.Attrs[i].Value = strconv.Itoa(max(n, 1) + 1)
			found = true
		}
	}
	if !found {
		m.Attrs = append(m.Attrs, protocol.Attr{Key: "qmq_times", Value: "2"})
	}
	out, err := protocol.AppendMessage(nil, &m)
	if err != nil {
		return append([]byte(nil), payload...)
	}
	return out[8:] // without the CRC, as stored
}

// limiter spaces events to at most perSecond.
type limiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func newLimiter(perSecond int) *limiter {
	return &limiter{interval: time.Second / time.Duration(perSecond)}
}

func (l *limiter) wait(ctx context.Context) bool {
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	if d := time.Until(at); d > 0 {
		return sleep(ctx, d)
	}
	return ctx.Err() == nil
}
