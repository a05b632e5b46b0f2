package query

import (
	"context"
	"errors"
	"fmt"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowkey"
	"github.com/qmq-go/qmq/protocol"
)

// BackupQuery is QMQ's backupQuery (qunar.tc.qmq.backup.base.BackupQuery),
// every field of it, so QMQ's clients' queries parse.
type BackupQuery struct {
	Subject            string    `json:"subject"`
	MessageID          string    `json:"messageId,omitempty"`
	MsgCreateTimeBegin beginTime `json:"msgCreateTimeBegin"`
	MsgCreateTimeEnd   endTime   `json:"msgCreateTimeEnd"`
	IsDelay            bool      `json:"isDelay,omitempty"`
	BrokerGroup        string    `json:"brokerGroup,omitempty"`
	ConsumerGroup      string    `json:"consumerGroup,omitempty"`
	Sequence           int64     `json:"sequence,omitempty"`
	Start              string    `json:"start,omitempty"`
	Len                int       `json:"len"`
	// StartOffset and Size are in QMQ's class but unused by its queries.
	StartOffset int64 `json:"startOffset,omitempty"`
	Size        int   `json:"size,omitempty"`
}

// RecordQuery is QMQ's recordQuery.
type RecordQuery struct {
	Subject     string `json:"subject"`
	MessageID   string `json:"messageId,omitempty"`
	BrokerGroup string `json:"brokerGroup,omitempty"`
	Sequence    int64  `json:"sequence"`
	RecordCode  int    `json:"recordCode"`
}

// MessageMeta is one entry of a message list (QMQ's
// MessageQueryResult.MessageMeta).
type MessageMeta struct {
	Subject       string `json:"subject"`
	ConsumerGroup string `json:"consumerGroup,omitempty"`
	MessageID     string `json:"messageId"`
	Sequence      int64  `json:"sequence"`
	CreateTime    int64  `json:"createTime"`
	BrokerGroup   string `json:"brokerGroup"`
}

// MessageList is QMQ's MessageQueryResult: next is null on the last page.
type MessageList struct {
	List []MessageMeta `json:"list"`
	Next *string       `json:"next"`
}

// Record is one entry of QMQ's RecordQueryResult.
type Record struct {
	ConsumerGroup string `json:"consumerGroup"`
	Action        int    `json:"action"` // 0 pull, 1 ack, -2 dead (QMQ's OMIT)
	Type          int    `json:"type"`   // the query's recordCode
	Timestamp     int64  `json:"timestamp"`
	ConsumerID    string `json:"consumerId"`
	Sequence      int64  `json:"sequence"`
	// BrokerGroup (ours, not in QMQ's answer) is where the record's
	// message is stored: with a retry record's consumerGroup and sequence
	// it names the retry copy for the detail query
	// ({"subject":"%RETRY%<subject>%<consumerGroup>","brokerGroup":…,"sequence":…}).
	BrokerGroup string `json:"brokerGroup,omitempty"`
}

// RecordList is QMQ's RecordQueryResult.
type RecordList struct {
	Records []Record `json:"records"`
}

// Detail is one message with its content (QMQ's BackupMessage as its
// detail query prints it).
type Detail struct {
	Subject       string            `json:"subject"`
	MessageID     string            `json:"messageId"`
	BrokerGroup   string            `json:"brokerGroup"`
	Sequence      int64             `json:"sequence"`
	ConsumerGroup string            `json:"consumerGroup,omitempty"`
	CreateTime    int64             `json:"createTime"`
	ExpireTime    int64             `json:"expireOrScheduleTime,omitempty"`
	Flag          int               `json:"flag"`
	Tags          []string          `json:"tags"`
	Attrs         map[string]string `json:"attrs"`
}

func (q *BackupQuery) messageQuery() backup.MessageQuery {
	return backup.MessageQuery{
		Subject: q.Subject, MessageID: q.MessageID, ConsumerGroup: q.ConsumerGroup,
		CreateTimeBegin: q.MsgCreateTimeBegin.Time.Time, CreateTimeEnd: q.MsgCreateTimeEnd.Time.Time,
		Len: q.Len, Start: q.Start,
	}
}

func list(p backup.MessagePage) MessageList {
	out := MessageList{List: make([]MessageMeta, 0, len(p.Messages))}
	for _, m := range p.Messages {
		out.List = append(out.List, MessageMeta{
			Subject: m.Subject, ConsumerGroup: m.ConsumerGroup, MessageID: m.MessageID,
			Sequence: m.Sequence, CreateTime: m.CreateTime.UnixMilli(), BrokerGroup: m.BrokerGroup,
		})
	}
	if p.Next != "" {
		next := p.Next
		out.Next = &next
	}
	return out
}

func (h *handler) messages(ctx context.Context, raw []byte) (any, error) {
	var q BackupQuery
	if err := decode("backupQuery", raw, &q); err != nil {
		return nil, err
	}
	if q.IsDelay {
		// QMQ keeps no backup of delay messages either and answers an empty list.
		return MessageList{List: []MessageMeta{}}, nil
	}
	p, err := h.store.FindMessages(ctx, q.messageQuery())
	if err != nil {
		return nil, err
	}
	return list(p), nil
}

func (h *handler) dead(ctx context.Context, raw []byte) (any, error) {
	var q BackupQuery
	if err := decode("backupQuery", raw, &q); err != nil {
		return nil, err
	}
	p, err := h.store.FindDeadLetters(ctx, q.messageQuery())
	if err != nil {
		return nil, err
	}
	return list(p), nil
}

// retries lists a message's retry copies (ours: QMQ's API has no such
// list; its detail query takes a copy by its stored subject, broker group
// and sequence, which this list gives, with the copy's consumerGroup).
func (h *handler) retries(ctx context.Context, raw []byte) (any, error) {
	var q BackupQuery
	if err := decode("backupQuery", raw, &q); err != nil {
		return nil, err
	}
	if q.MessageID == "" {
		return nil, badRequest("messageId", "messageId: is required: the retry copies of which message (the list's messageId)")
	}
	p, err := h.store.FindRetries(ctx, q.messageQuery())
	if err != nil {
		return nil, err
	}
	return list(p), nil
}

func (h *handler) records(ctx context.Context, raw []byte) (any, error) {
	var q RecordQuery
	if err := decode("recordQuery", raw, &q); err != nil {
		return nil, err
	}
	if q.RecordCode < 0 || q.RecordCode > 2 {
		return nil, badRequest("recordCode", "recordCode: is %d; it must be 0 (the message's records), 1 (its retries') or 2 (its dead letters)", q.RecordCode)
	}
	recs, err := h.store.FindRecords(ctx, backup.RecordQuery{
		Subject: q.Subject, MessageID: q.MessageID, BrokerGroup: q.BrokerGroup, Sequence: q.Sequence, Kind: backup.Kind(q.RecordCode),
	})
	if err != nil {
		return nil, err
	}
	out := RecordList{Records: make([]Record, 0, len(recs))}
	for _, r := range recs {
		out.Records = append(out.Records, Record{
			ConsumerGroup: r.ConsumerGroup, Action: r.Action.Code(), Type: q.RecordCode,
			Timestamp: r.Timestamp.UnixMilli(), ConsumerID: r.ConsumerID, Sequence: r.Sequence, BrokerGroup: r.BrokerGroup,
		})
	}
	return out, nil
}

func (h *handler) detail(ctx context.Context, raw []byte) (any, error) {
	var q BackupQuery
	if err := decode("backupQuery", raw, &q); err != nil {
		return nil, err
	}
	switch {
	case q.Subject == "":
		return nil, badRequest("subject", "subject: is required")
	case q.BrokerGroup == "":
		return nil, badRequest("brokerGroup", "brokerGroup: is required (the list's brokerGroup of the message)")
	case q.Sequence < 0:
		return nil, badRequest("sequence", "sequence: is %d; it must not be negative", q.Sequence)
	}
	// A normal message, each consumer group's retry copies and its dead
	// letters are numbered in their own logs, so broker group and sequence
	// alone are ambiguous. The dead list's consumerGroup names the dead
	// letter. QMQ's detail query has no such field in use — it asks the
	// slave for the subject as given — so the stored subjects
	// %RETRY%<subject>%<group> (a retry copy, the only way to name one: the
	// backupQuery has no kind) and %DEAD_RETRY%<subject>%<group> are taken
	// too.
	ref := backup.MessageRef{Subject: q.Subject, BrokerGroup: q.BrokerGroup, Sequence: q.Sequence, ConsumerGroup: q.ConsumerGroup}
	stored := q.Subject // as the broker group's log holds it, for the DetailSource
	if prefix, subject, group := rowkey.SplitSubject(q.Subject); prefix != "" {
		if q.ConsumerGroup != "" && q.ConsumerGroup != group {
			return nil, badRequest("consumerGroup", "consumerGroup: is %q but the subject %q names a copy of %q", q.ConsumerGroup, q.Subject, group)
		}
		ref.Subject, ref.ConsumerGroup = subject, group
		if prefix == rowkey.RetryPrefix {
			ref.Kind, stored = backup.KindRetry, protocol.RetrySubject(subject, group)
		} else {
			ref.Kind, stored = backup.KindDead, protocol.DeadRetrySubject(subject, group)
		}
	} else if q.ConsumerGroup != "" {
		ref.Kind, stored = backup.KindDead, protocol.DeadRetrySubject(q.Subject, q.ConsumerGroup)
	}
	m, err := h.store.FindMessage(ctx, ref)
	var content []byte
	switch {
	case err == nil && len(m.Content) > 0:
		content = m.Content
	case err == nil || errors.Is(err, backup.ErrNotFound):
		if h.opts.Detail == nil {
			if err == nil {
				err = fmt.Errorf("message %d of %q in %q: the backup keeps no content of it (backup.message.content is off) and has no way to fetch it: %w", q.Sequence, q.Subject, q.BrokerGroup, backup.ErrNotFound)
			}
			return nil, err
		}
		req := DetailRequest{Subject: stored, BrokerGroup: q.BrokerGroup, Sequence: q.Sequence, LogOffset: m.LogOffset, Located: m.Located}
		if content, err = h.opts.Detail(ctx, req); err != nil {
			return nil, err
		}
		m.ConsumerGroup = ref.ConsumerGroup
	default:
		return nil, err
	}
	pm, derr := protocol.DecodePayload(content)
	if derr != nil {
		return nil, fmt.Errorf("message %d of %q in %q: its stored bytes do not decode: %w", q.Sequence, q.Subject, q.BrokerGroup, derr)
	}
	d := Detail{
		Subject: pm.Subject, MessageID: pm.MessageID, BrokerGroup: q.BrokerGroup, Sequence: q.Sequence,
		ConsumerGroup: m.ConsumerGroup, CreateTime: pm.CreateTime, ExpireTime: pm.ExpireOrScheduleTime, Flag: int(pm.Flag),
		Tags: pm.Tags, Attrs: make(map[string]string, len(pm.Attrs)),
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	for _, a := range pm.Attrs {
		d.Attrs[a.Key] = a.Value
	}
	return d, nil
}
