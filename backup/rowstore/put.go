package rowstore

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowkey"
)

// PutMessages writes msgs' rows: for KindNormal the qmq_backup row (plus
// the id index with Options.IDIndex, and a detail row when the message has
// Content or is Located); for KindRetry the qmq_backup retry row (and a
// detail row likewise); for KindDead the
// qmq_backup_dead and qmq_backup_dead_content rows, the dead record in
// qmq_backup_record, and a detail row.
func (s *Store) PutMessages(ctx context.Context, msgs []backup.Message) error {
	if err := s.check(); err != nil {
		return err
	}
	rows := make([]Row, 0, 2*len(msgs))
	for i := range msgs {
		var err error
		if rows, err = s.messageRows(ctx, rows, &msgs[i]); err != nil {
			return fmt.Errorf("%s: message %d of %d (subject %q, id %q): %w", s.opts.Name, i, len(msgs), msgs[i].Subject, msgs[i].MessageID, err)
		}
	}
	return s.t.Put(ctx, rows)
}

func checkMessage(m *backup.Message) error {
	switch {
	case m.Subject == "":
		return fmt.Errorf("no subject")
	case m.MessageID == "":
		return fmt.Errorf("no message id")
	case m.BrokerGroup == "":
		return fmt.Errorf("no broker group")
	case m.Kind != backup.KindNormal && m.ConsumerGroup == "":
		return fmt.Errorf("a retry or dead-letter copy without its consumer group")
	case m.Kind > backup.KindDead:
		return fmt.Errorf("kind %d is none of normal (0), retry (1), dead (2)", m.Kind)
	}
	return nil
}

func (s *Store) messageRows(ctx context.Context, rows []Row, m *backup.Message) ([]Row, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	seq, err := rowkey.SeqKey(m.Sequence)
	if err != nil {
		return nil, err
	}
	index, err := rowkey.IndexValue{Sequence: m.Sequence, CreateTimeMs: m.CreateTime.UnixMilli(), BrokerGroup: m.BrokerGroup, MessageID: m.MessageID}.Encode(nil)
	if err != nil {
		return nil, err
	}
	tk, md := s.timeKey(m.CreateTime), rowkey.MD5Key(m.MessageID)
	bg, err := s.dict.ID(ctx, m.BrokerGroup)
	if err != nil {
		return nil, err
	}
	row := func(t Table, k, v []byte) { rows = append(rows, Row{Table: t, Key: k, Value: v, Time: m.CreateTime}) }
	detail := func(key []byte, cg string, content []byte) error {
		v, err := rowkey.DetailValue{CreateTimeMs: m.CreateTime.UnixMilli(), Kind: byte(m.Kind), LogOffset: m.LogOffset, Located: m.Located,
			MessageID: m.MessageID, ConsumerGroup: cg, Content: content}.Encode(nil)
		if err == nil {
			row(Details, key, v)
		}
		return err
	}
	switch m.Kind {
	case backup.KindNormal:
		sid, err := s.dict.ID(ctx, m.Subject)
		if err != nil {
			return nil, err
		}
		row(Messages, rowkey.MessageKey(sid, tk, md), index)
		if s.opts.IDIndex {
			if oid, ok := rowkey.OrderedID(m.MessageID); ok {
				row(IDOrdered, rowkey.OrderedIDIndexKey(sid, oid, tk, bg, seq), index)
			} else {
				row(IDIndex, rowkey.IDIndexKey(sid, md, tk, bg, seq), index)
			}
		}
		// The detail row: the content, or where the group's log holds it.
		if len(m.Content) > 0 || m.Located {
			if err := detail(rowkey.DetailKey(sid, bg, seq), "", m.Content); err != nil {
				return nil, err
			}
		}
	case backup.KindRetry:
		rsid, err := s.dict.ID(ctx, rowkey.RetrySubject(m.Subject))
		if err != nil {
			return nil, err
		}
		cg, err := s.dict.ID(ctx, m.ConsumerGroup)
		if err != nil {
			return nil, err
		}
		row(Messages, rowkey.RetryKey(rsid, md, tk, bg, cg, seq), index)
		// The copy's detail row, as a normal message's: its content, or
		// where the group's log holds it (keyed by the original subject's
		// id and the group's, as a dead letter's).
		if len(m.Content) > 0 || m.Located {
			sid, err := s.dict.ID(ctx, m.Subject)
			if err != nil {
				return nil, err
			}
			if err := detail(rowkey.RetryDetailKey(sid, bg, seq, cg), m.ConsumerGroup, m.Content); err != nil {
				return nil, err
			}
		}
	case backup.KindDead:
		sid, err := s.dict.ID(ctx, m.Subject)
		if err != nil {
			return nil, err
		}
		cg, err := s.dict.ID(ctx, m.ConsumerGroup)
		if err != nil {
			return nil, err
		}
		dsid, err := s.dict.ID(ctx, rowkey.DeadRetrySubject(m.Subject))
		if err != nil {
			return nil, err
		}
		key := rowkey.DeadKey(sid, cg, tk, md)
		row(Dead, key, index)
		// QMQ's dead content is what HBaseValueDecoder.getMessage reads: the
		// sequence, then the stored message.
		content := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(m.Content)), uint64(m.Sequence))
		row(DeadContent, key, append(content, m.Content...))
		rec := rowkey.DeadRecordValue{Sequence: m.Sequence, TimestampMs: m.CreateTime.UnixMilli() + rowkey.DeadRecordDelay, ConsumerGroup: m.ConsumerGroup}
		row(Records, rowkey.DeadRecordKey(dsid, md, cg), rec.Encode(nil))
		// The detail row points at the dead content; it holds no copy.
		if err := detail(rowkey.DeadDetailKey(sid, bg, seq, cg), m.ConsumerGroup, nil); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// PutRecords writes recs' qmq_backup_record rows.
func (s *Store) PutRecords(ctx context.Context, recs []backup.Record) error {
	if err := s.check(); err != nil {
		return err
	}
	rows := make([]Row, 0, len(recs))
	for i := range recs {
		row, err := s.recordRow(ctx, &recs[i])
		if err != nil {
			return fmt.Errorf("%s: record %d of %d (subject %q, sequence %d): %w", s.opts.Name, i, len(recs), recs[i].Subject, recs[i].Sequence, err)
		}
		rows = append(rows, row)
	}
	return s.t.Put(ctx, rows)
}

func (s *Store) recordRow(ctx context.Context, r *backup.Record) (Row, error) {
	switch {
	case r.Subject == "":
		return Row{}, fmt.Errorf("no subject")
	case r.BrokerGroup == "":
		return Row{}, fmt.Errorf("no broker group")
	case r.ConsumerGroup == "":
		return Row{}, fmt.Errorf("no consumer group")
	case r.Action != backup.ActionPull && r.Action != backup.ActionAck:
		return Row{}, fmt.Errorf("action %d is neither pull (0) nor ack (1)", r.Action)
	}
	seq, err := rowkey.SeqKey(r.Sequence)
	if err != nil {
		return Row{}, err
	}
	// QMQ keys records of "%RETRY%s%g" under "%RETRY%s" (the group is in the key).
	name := r.Subject
	if prefix, subject, _ := rowkey.SplitSubject(r.Subject); prefix != "" {
		name = prefix + "%" + subject
	}
	sid, err := s.dict.ID(ctx, name)
	if err != nil {
		return Row{}, err
	}
	bg, err := s.dict.ID(ctx, r.BrokerGroup)
	if err != nil {
		return Row{}, err
	}
	cg, err := s.dict.ID(ctx, r.ConsumerGroup)
	if err != nil {
		return Row{}, err
	}
	v, err := rowkey.RecordValue{TimestampMs: r.Timestamp.UnixMilli(), ConsumerID: r.ConsumerID, ConsumerGroup: r.ConsumerGroup}.Encode(nil)
	if err != nil {
		return Row{}, err
	}
	return Row{Table: Records, Key: rowkey.RecordKey(sid, seq, bg, cg, byte(r.Action)), Value: v, Time: r.Timestamp}, nil
}
