package rowstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowkey"
)

// FindRecords returns a message's consume records, oldest first:
// KindNormal — pulls and acks of (subject, brokerGroup, sequence);
// KindRetry — those of every retry copy of messageId; KindDead — its dead
// letters (action ActionOmit).
func (s *Store) FindRecords(ctx context.Context, q backup.RecordQuery) ([]backup.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if q.Subject == "" {
		return nil, badQuery("subject", "is required")
	}
	var recs []backup.Record
	var err error
	switch q.Kind {
	case backup.KindNormal:
		if q.BrokerGroup == "" {
			return nil, badQuery("brokerGroup", "is required for recordCode 0 (the message's own records)")
		}
		if q.Sequence < 0 {
			return nil, badQuery("sequence", "is %d; it must not be negative", q.Sequence)
		}
		sid, err := s.lookup(ctx, "subject", q.Subject)
		if err != nil {
			return nil, err
		}
		bg, ok, err := s.dict.Lookup(ctx, q.BrokerGroup)
		if err != nil || !ok {
			return nil, err // a broker group never seen has no records
		}
		recs, err = s.records(ctx, sid, q.Subject, q.BrokerGroup, bg, q.Sequence)
		if err != nil {
			return nil, err
		}
	case backup.KindRetry:
		if q.MessageID == "" {
			return nil, badQuery("messageId", "is required for recordCode 1 (retry records)")
		}
		if recs, err = s.retryRecords(ctx, q); err != nil {
			return nil, err
		}
	case backup.KindDead:
		if q.MessageID == "" {
			return nil, badQuery("messageId", "is required for recordCode 2 (dead records)")
		}
		if recs, err = s.deadRecords(ctx, q); err != nil {
			return nil, err
		}
	default:
		return nil, badQuery("recordCode", "is %d; it must be 0 (records), 1 (retry records) or 2 (dead records)", q.Kind)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Timestamp.Before(recs[j].Timestamp) })
	return recs, nil
}

// records reads the pulls and acks of one stored message: QMQ's
// buildRecordStartKey/EndKey range subjectId + seq19 + brokerGroupId.
func (s *Store) records(ctx context.Context, sid, subject, brokerGroup, bg string, sequence int64) ([]backup.Record, error) {
	seq, err := rowkey.SeqKey(sequence)
	if err != nil {
		return nil, err
	}
	prefix := concat(sid, seq, bg)
	var recs []backup.Record
	var rowErr error
	err = s.t.Scan(ctx, Scan{Table: Records, Start: prefix, Stop: prefixEnd(prefix), Batch: 100}, func(k, v []byte) bool {
		p, err := rowkey.ParseRecordKey(k)
		if err != nil {
			rowErr = err
			return false
		}
		rv, err := rowkey.DecodeRecordValue(v)
		if err != nil {
			rowErr = fmt.Errorf("row %q: %w", k, err)
			return false
		}
		recs = append(recs, backup.Record{
			Subject: subject, BrokerGroup: brokerGroup, Sequence: p.Sequence, ConsumerGroup: rv.ConsumerGroup,
			ConsumerID: rv.ConsumerID, Action: backup.Action(p.Action), Timestamp: time.UnixMilli(rv.TimestampMs),
		})
		return true
	})
	if err == nil {
		err = rowErr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s.opts.Name, Records, err)
	}
	return recs, nil
}

// retryRecords finds the retry copies of a message in qmq_backup (QMQ's
// buildRetryRegexp range, of any age) and reads each copy's records.
func (s *Store) retryRecords(ctx context.Context, q backup.RecordQuery) ([]backup.Record, error) {
	rsid, ok, err := s.dict.Lookup(ctx, rowkey.RetrySubject(q.Subject))
	if err != nil || !ok {
		return nil, err // never retried
	}
	type copyOf struct {
		p           rowkey.RetryKeyParts
		brokerGroup string
	}
	var copies []copyOf
	var rowErr error
	prefix := concat(rsid, rowkey.MD5Key(q.MessageID))
	err = s.t.Scan(ctx, Scan{Table: Messages, Start: prefix, Stop: prefixEnd(prefix), Batch: 100}, func(k, v []byte) bool {
		p, err := rowkey.ParseRetryKey(k)
		if err != nil {
			rowErr = err
			return false
		}
		iv, err := rowkey.DecodeIndexValue(v)
		if err != nil {
			rowErr = fmt.Errorf("row %q: %w", k, err)
			return false
		}
		if iv.MessageID == q.MessageID {
			copies = append(copies, copyOf{p, iv.BrokerGroup})
		}
		return true
	})
	if err == nil {
		err = rowErr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s.opts.Name, Messages, err)
	}
	var recs []backup.Record
	for _, c := range copies {
		group, err := s.dict.Name(ctx, c.p.ConsumerGroupID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.opts.Name, err)
		}
		rs, err := s.records(ctx, rsid, "%RETRY%"+q.Subject+"%"+group, c.brokerGroup, c.p.BrokerGroupID, c.p.Sequence)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if r.ConsumerGroup == group { // the copy's own group's records
				recs = append(recs, r)
			}
		}
	}
	return recs, nil
}

// deadRecords reads the dead records of a message: QMQ's
// buildDeadRecordStartKey/EndKey range id("%DEAD_RETRY%subject") + md5.
func (s *Store) deadRecords(ctx context.Context, q backup.RecordQuery) ([]backup.Record, error) {
	dsid, ok, err := s.dict.Lookup(ctx, rowkey.DeadRetrySubject(q.Subject))
	if err != nil || !ok {
		return nil, err // never dead
	}
	prefix := concat(dsid, rowkey.MD5Key(q.MessageID))
	var recs []backup.Record
	var rowErr error
	err = s.t.Scan(ctx, Scan{Table: Records, Start: prefix, Stop: prefixEnd(prefix), Batch: 100}, func(k, v []byte) bool {
		if len(k) != rowkey.DeadRecordKeyLen {
			return true
		}
		d, err := rowkey.DecodeDeadRecordValue(v)
		if err != nil {
			rowErr = fmt.Errorf("row %q: %w", k, err)
			return false
		}
		recs = append(recs, backup.Record{
			Subject: "%DEAD_RETRY%" + q.Subject + "%" + d.ConsumerGroup, Sequence: d.Sequence, ConsumerGroup: d.ConsumerGroup,
			Action: backup.ActionOmit, Timestamp: time.UnixMilli(d.TimestampMs),
		})
		return true
	})
	if err == nil {
		err = rowErr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s.opts.Name, Records, err)
	}
	return recs, nil
}
