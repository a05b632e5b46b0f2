package backup

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/qmq-go/qmq/backup"
)

// memStore is a backup.Store in memory for the tests (the real ones live
// in backup/…): idempotent Puts keyed as QMQ's rows are, a switch that
// makes every call fail as an unreachable HBase gateway does, and counters
// of the entries written (including rewrites).
type memStore struct {
	mu   sync.Mutex
	msgs map[msgKey]backup.Message
	recs map[recKey]backup.Record
	fail atomic.Bool
	// poison, if set, makes a Put holding a message of that subject fail
	// (not as unavailable): a store refusing one entry.
	poison  func(subject string) bool
	puts    atomic.Int64 // entries handed to successful Puts (rewrites included)
	refused atomic.Int64
}

type msgKey struct {
	kind           backup.Kind
	subject, group string
	brokerGroup    string
	seq            int64
}

type recKey struct {
	subject, brokerGroup string
	seq                  int64
	group, consumerID    string
	action               backup.Action
}

func newMemStore() *memStore {
	return &memStore{msgs: map[msgKey]backup.Message{}, recs: map[recKey]backup.Record{}}
}

var _ backup.Store = (*memStore)(nil)

func (s *memStore) check() error {
	if s.fail.Load() {
		s.refused.Add(1)
		return fmt.Errorf("%w: the test switched the store off", backup.ErrUnavailable)
	}
	return nil
}

func (s *memStore) PutMessages(ctx context.Context, msgs []backup.Message) error {
	if err := s.check(); err != nil {
		return err
	}
	for _, m := range msgs {
		if s.poison != nil && s.poison(m.Subject) {
			return fmt.Errorf("the test store refuses subject %q", m.Subject)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.msgs[msgKey{m.Kind, m.Subject, m.ConsumerGroup, m.BrokerGroup, m.Sequence}] = m
	}
	s.puts.Add(int64(len(msgs)))
	return nil
}

func (s *memStore) PutRecords(ctx context.Context, recs []backup.Record) error {
	if err := s.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.recs[recKey{r.Subject, r.BrokerGroup, r.Sequence, r.ConsumerGroup, r.ConsumerID, r.Action}] = r
	}
	s.puts.Add(int64(len(recs)))
	return nil
}

func (s *memStore) find(kind backup.Kind, q backup.MessageQuery) backup.MessagePage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backup.Message
	for k, m := range s.msgs {
		if k.kind == kind && m.Subject == q.Subject && (q.MessageID == "" || q.MessageID == m.MessageID) &&
			(q.ConsumerGroup == "" || q.ConsumerGroup == m.ConsumerGroup) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return backup.MessagePage{Messages: out}
}

func (s *memStore) FindMessages(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	return s.find(backup.KindNormal, q), s.check()
}

func (s *memStore) FindDeadLetters(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	return s.find(backup.KindDead, q), s.check()
}

func (s *memStore) FindRetries(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	return s.find(backup.KindRetry, q), s.check()
}

func (s *memStore) FindMessage(ctx context.Context, ref backup.MessageRef) (backup.Message, error) {
	if err := s.check(); err != nil {
		return backup.Message{}, err
	}
	kind := ref.Which()
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.msgs[msgKey{kind, ref.Subject, ref.ConsumerGroup, ref.BrokerGroup, ref.Sequence}]; ok {
		return m, nil
	}
	return backup.Message{}, fmt.Errorf("%w: %+v", backup.ErrNotFound, ref)
}

func (s *memStore) Sync(context.Context) error { return nil }

func (s *memStore) FindRecords(ctx context.Context, q backup.RecordQuery) ([]backup.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backup.Record
	for _, r := range s.recs {
		if r.Subject == q.Subject && r.BrokerGroup == q.BrokerGroup && r.Sequence == q.Sequence {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) Close() error { return nil }

// messages returns the entries of kind for subject, by sequence.
func (s *memStore) messages(kind backup.Kind, subject string) []backup.Message {
	return s.find(kind, backup.MessageQuery{Subject: subject}).Messages
}

// records returns the records of consumer group on stored subject.
func (s *memStore) records(subject, group string) []backup.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backup.Record
	for _, r := range s.recs {
		if r.Subject == subject && r.ConsumerGroup == group {
			out = append(out, r)
		}
	}
	return out
}
