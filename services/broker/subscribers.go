package broker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// subscribers tracks when each (non-broadcast) consumer was last heard from
// and moves the unacked messages of silent ones to their retry subject
// (QMQ's SubscriberStatusChecker + RetryTask).
type subscribers struct {
	s        *instance
	mu       sync.Mutex
	lastSeen map[pulllog.ConsumerKey]time.Time
	limiter  *limiter
}

func newSubscribers(s *instance) *subscribers {
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
	for backoff.Sleep(ctx, every) == nil {
		sb.check(ctx)
	}
}

// check moves messages of offline consumers and entries skipped by acks,
// and drops consumers silent for subscriber.forever.offline.timeout.ms.
func (sb *subscribers) check(ctx context.Context) {
	s := sb.s
	// A slave's store is a byte copy of its master's: the master moves
	// these messages and the slave copies the result. Writing here would
	// fork the slave's logs from the master's.
	master := s.role.Load() == protocol.RoleMaster
	now := time.Now()
	if !s.online.Load() || !master {
		// QMQ (ConsumerStatusChecker.SkipCheckDuringOffline): while the
		// metaserver does not list this broker, consumers cannot find it,
		// so their silence says nothing about them.
		sb.mu.Lock()
		for k := range sb.lastSeen {
			sb.lastSeen[k] = now
		}
		sb.mu.Unlock()
		if !master {
			return
		}
	} else {
		cutoff, foreverCutoff := now.Add(-s.settings.OfflineTimeout), now.Add(-s.settings.ForeverTimeout)
		type silent struct {
			k    pulllog.ConsumerKey
			seen time.Time
		}
		var offline []silent
		sb.mu.Lock()
		for k, t := range sb.lastSeen {
			if t.Before(cutoff) {
				offline = append(offline, silent{k, t})
			}
		}
		sb.mu.Unlock()
		for _, o := range offline {
			if ctx.Err() != nil {
				return
			}
			sb.offline(ctx, o.k)
			if o.seen.Before(foreverCutoff) {
				sb.forever(ctx, o.k, o.seen)
			}
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

// offline moves an offline consumer's unacked messages to its retry subject
// and range-acks them (QMQ's RetryTask).
func (sb *subscribers) offline(ctx context.Context, k pulllog.ConsumerKey) {
	s := sb.s
	var runs []pulllog.Run
	var prog pulllog.ConsumerProgress
	s.store.PullLog(func(t *pulllog.Table) {
		runs = t.Unacked(k.Subject, k.Group, k.ConsumerID)
		prog, _ = t.Consumer(k.Subject, k.Group, k.ConsumerID)
	})
	if len(runs) == 0 {
		return
	}
	s.log.Warn("consumer offline: moving its unacked messages to the retry subject", "subject", k.Subject, "group", k.Group,
		"consumer", k.ConsumerID, "silent_for", s.settings.OfflineTimeout, "pulled", prog.PullSeq, "acked", prog.AckSeq)
	if last, ok := sb.moveRuns(ctx, k, runs); ok || last > prog.AckSeq {
		_ = s.store.ApplyActions([]actionlog.Action{{Type: actionlog.RangeAck, Subject: k.Subject, Group: k.Group, ConsumerID: k.ConsumerID,
			Timestamp: time.Now().UnixMilli(), FirstPullSeq: prog.AckSeq + 1, LastPullSeq: max(last, prog.AckSeq+1)}})
	}
}

// forever drops a consumer silent since seen, past
// subscriber.forever.offline.timeout.ms (QMQ's OfflineTask: 2 days): once
// nothing it pulled is left unacked, a FOREVER_OFFLINE action removes its
// pull log and progress from the table, and it is no longer tracked. The
// group's cursor is shared and stays; a consumer with that id coming back
// later starts a new pull log. Nothing happens if it was heard from since.
func (sb *subscribers) forever(ctx context.Context, k pulllog.ConsumerKey, seen time.Time) {
	s := sb.s
	var runs, skipped []pulllog.Run
	var prog pulllog.ConsumerProgress
	s.store.PullLog(func(t *pulllog.Table) {
		skipped = t.TakeSkipped(k.Subject, k.Group, k.ConsumerID)
		runs = t.Unacked(k.Subject, k.Group, k.ConsumerID)
		prog, _ = t.Consumer(k.Subject, k.Group, k.ConsumerID)
	})
	if len(skipped) > 0 {
		if _, ok := sb.moveRuns(ctx, k, skipped); !ok {
			return
		}
	}
	if len(runs) > 0 {
		return // moving them failed this round: try again next time
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if t, ok := sb.lastSeen[k]; !ok || t.After(seen) {
		return // it came back meanwhile
	}
	err := s.store.ApplyActions([]actionlog.Action{{Type: actionlog.ForeverOffline, Subject: k.Subject, Group: k.Group, ConsumerID: k.ConsumerID,
		Timestamp: time.Now().UnixMilli()}})
	if err != nil {
		s.log.Error("recording a consumer as offline for good failed; will try again", "subject", k.Subject, "group", k.Group, "consumer", k.ConsumerID, "error", err)
		return
	}
	delete(sb.lastSeen, k)
	s.m.foreverOffline.Inc()
	s.log.Info("consumer offline for good: its pull log and progress are dropped", "subject", k.Subject, "group", k.Group, "consumer", k.ConsumerID,
		"silent_since", seen, "subscriber.forever.offline.timeout.ms", s.settings.ForeverTimeout, "pulled", prog.PullSeq, "acked", prog.AckSeq)
}

// moveRuns re-appends the messages of runs to the consumer's retry subject
// (or, for a message out of retries, its dead-letter subject), rate-limited.
// It returns the last pull sequence handled and whether all were.
func (sb *subscribers) moveRuns(ctx context.Context, k pulllog.ConsumerKey, runs []pulllog.Run) (int64, bool) {
	s := sb.s
	retry, dead := retrySubject(k.Subject, k.Group), deadSubject(k.Subject, k.Group)
	last := int64(-1)
	for _, r := range runs {
		for i := int64(0); i < r.Count; i++ {
			if !sb.limiter.wait(ctx) {
				return last, false
			}
			msgSeq := r.FirstMsgSeq + i
			rec, err := s.store.Read(k.Subject, msgSeq)
			if err == nil {
				payload, target, times, maxTimes := retryPayload(rec.Payload, retry, dead)
				rec.Release()
				if _, err = s.store.Append(ctx, []messagelog.Message{{Subject: target, Payload: payload}}); err != nil {
					s.log.Error("moving a message to its retry subject failed; will try again", "subject", k.Subject, "sequence", msgSeq, "target", target, "error", err)
					return last, false
				}
				if target == dead {
					s.m.movedDead.Inc()
					s.log.Warn("message used up its retries: moved to the dead-letter subject (stored, not delivered)", "subject", k.Subject, "group", k.Group,
						"sequence", msgSeq, "qmq_times", times, "max_retries", maxTimes, "dead_letter_subject", dead)
				} else {
					s.m.movedRetry.Inc()
				}
			}
			// A message retention deleted is gone: nothing to move.
			last = r.FirstPullSeq + i
		}
	}
	return last, true
}

// retrySubject is %RETRY%<subject>%<group>; a retry subject stays itself.
func retrySubject(subject, group string) string {
	if strings.HasPrefix(subject, protocol.RetryPrefix) {
		return subject
	}
	return protocol.RetryPrefix + subject + "%" + group
}

// deadSubject is %DEAD_RETRY%<real subject>%<group>, as QMQ's consumer
// names it.
func deadSubject(subject, group string) string {
	return protocol.DeadRetryPrefix + protocol.RealSubject(subject) + "%" + group
}

// defaultMaxRetries is QMQ's client default for a message's retries
// (PullSubjectsConfig maxRetryNum) when it carries no qmq_maxRetryNum.
const defaultMaxRetries = 32

// retryPayload rewrites a stored payload for the retry subject: qmq_times
// incremented (2 if absent, as QMQ counts the first delivery as 1) and the
// subject replaced. As in QMQ's consumer (AckSendQueue), a message whose
// new qmq_times exceeds its qmq_maxRetryNum (32 without one) goes to the
// dead-letter subject instead. A payload that does not decode is
// re-appended as it is, to the retry subject.
func retryPayload(payload []byte, retry, dead string) (out []byte, target string, times, maxTimes int) {
	m, err := protocol.DecodePayload(payload)
	if err != nil {
		return append([]byte(nil), payload...), retry, 0, 0
	}
	times, maxTimes = 1, defaultMaxRetries
	at := -1
	for i := range m.Attrs {
		switch m.Attrs[i].Key {
		case "qmq_times":
			if n, err := strconv.Atoi(m.Attrs[i].Value); err == nil && n > times {
				times = n
			}
			at = i
		case "qmq_maxRetryNum":
			if n, err := strconv.Atoi(m.Attrs[i].Value); err == nil && n >= 0 {
				maxTimes = n
			}
		}
	}
	times++
	if at >= 0 {
		m.Attrs[at].Value = strconv.Itoa(times)
	} else {
		m.Attrs = append(m.Attrs, protocol.Attr{Key: "qmq_times", Value: strconv.Itoa(times)})
	}
	target = retry
	if times > maxTimes {
		target = dead
	}
	m.Subject = target
	enc, err := protocol.AppendMessage(nil, &m)
	if err != nil {
		return append([]byte(nil), payload...), retry, times, maxTimes
	}
	return enc[8:], target, times, maxTimes // without the CRC, as stored
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
		return backoff.Sleep(ctx, d) == nil
	}
	return ctx.Err() == nil
}
