package rowstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowkey"
)

// window is a query's checked time range and page.
type window struct {
	begin, end time.Time
	beginMs    int64
	endMs      int64
}

func (s *Store) checkQuery(q *backup.MessageQuery) (window, error) {
	if q.Subject == "" {
		return window{}, badQuery("subject", "is required")
	}
	if q.Len < 1 || q.Len > backup.MaxPageLen {
		return window{}, badQuery("len", "is %d; it must be 1..%d", q.Len, backup.MaxPageLen)
	}
	w := window{begin: q.CreateTimeBegin, end: q.CreateTimeEnd}
	if w.end.IsZero() {
		w.end = s.opts.Now()
	}
	if w.begin.IsZero() {
		w.begin = w.end.Add(-DefaultRange)
	}
	if w.begin.After(w.end) {
		return window{}, badQuery("msgCreateTimeBegin", "%s is after msgCreateTimeEnd %s", w.begin.Format(time.RFC3339Nano), w.end.Format(time.RFC3339Nano))
	}
	w.beginMs, w.endMs = w.begin.UnixMilli(), w.end.UnixMilli()
	return w, nil
}

// lookup returns name's id; a name never written is ErrNotFound naming field.
func (s *Store) lookup(ctx context.Context, field, name string) (string, error) {
	id, ok, err := s.dict.Lookup(ctx, name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.opts.Name, err)
	}
	if !ok {
		return "", &FieldError{Name: field, Msg: fmt.Sprintf("%q: nothing of it was ever backed up here", name), Err: backup.ErrNotFound}
	}
	return id, nil
}

// startKey is where a page starts: the query's first key, or its Start
// (a previous page's Next) when that lies further on. A Start that is not a
// key of this query's table and prefix is ErrBadQuery.
func startKey(first []byte, start string, prefix []byte, valid func([]byte) error) ([]byte, error) {
	if start == "" {
		return first, nil
	}
	k := []byte(start)
	if err := valid(k); err != nil || !bytes.HasPrefix(k, prefix) {
		return nil, badQuery("start", "%.80q is not the next of a page of this query; pass back a previous answer's next as is", start)
	}
	if bytes.Compare(k, first) < 0 {
		return first, nil
	}
	return k, nil
}

// validMessageKey checks a page cursor of the qmq_backup table.
func validMessageKey(k []byte) error { _, err := rowkey.ParseMessageKey(k); return err }

// FindMessages pages through a subject's normal messages, newest first.
func (s *Store) FindMessages(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	if err := s.check(); err != nil {
		return backup.MessagePage{}, err
	}
	w, err := s.checkQuery(&q)
	if err != nil {
		return backup.MessagePage{}, err
	}
	sid, err := s.lookup(ctx, "subject", q.Subject)
	if err != nil {
		return backup.MessagePage{}, err
	}
	noGroup := func([]byte) (string, error) { return "", nil }
	find := func(table Table, prefix []byte, valid func([]byte) error, regexp string) (backup.MessagePage, error) {
		sc := Scan{Table: table, Batch: q.Len + 1, Regexp: regexp}
		first := concat(string(prefix), s.timeKey(w.end))
		var err error
		if sc.Start, err = startKey(first, q.Start, prefix, valid); err != nil {
			return backup.MessagePage{}, err
		}
		sc.Stop = prefixEnd(concat(string(prefix), s.timeKey(w.begin)))
		return s.page(ctx, sc, q, w, backup.KindNormal, noGroup)
	}
	if q.MessageID == "" {
		return find(Messages, []byte(sid), validMessageKey, "")
	}
	md := rowkey.MD5Key(q.MessageID)
	if !s.opts.IDIndex {
		// QMQ's BackupMessageKeyRegexpBuilder.build.
		return find(Messages, []byte(sid), validMessageKey, "^"+sid+`\d{12}`+md)
	}
	byMD5 := func() (backup.MessagePage, error) {
		return find(IDIndex, concat(sid, md), func(k []byte) error { _, _, _, err := rowkey.ParseIDIndexKey(k); return err }, "")
	}
	oid, ok := rowkey.OrderedID(q.MessageID)
	if !ok {
		return byMD5()
	}
	if q.Start != "" {
		if _, _, _, err := rowkey.ParseIDIndexKey([]byte(q.Start)); err == nil {
			return byMD5() // the next page of an answer from the md5 index
		}
	}
	page, err := find(IDOrdered, concat(sid, oid), func(k []byte) error { _, _, _, err := rowkey.ParseOrderedIDIndexKey(k); return err }, "")
	if err != nil || len(page.Messages) > 0 || q.Start != "" {
		return page, err
	}
	// A store written before the ordered index keeps the id under its md5.
	return byMD5()
}

// FindDeadLetters pages through a subject's dead letters: by consumer group
// id, then newest first, as QMQ's key order has them.
func (s *Store) FindDeadLetters(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	if err := s.check(); err != nil {
		return backup.MessagePage{}, err
	}
	w, err := s.checkQuery(&q)
	if err != nil {
		return backup.MessagePage{}, err
	}
	sid, err := s.lookup(ctx, "subject", q.Subject)
	if err != nil {
		return backup.MessagePage{}, err
	}
	sc := Scan{Table: Dead, Batch: q.Len + 1}
	prefix := []byte(sid)
	groupRE := `\d{6}`
	if q.ConsumerGroup != "" {
		cg, err := s.lookup(ctx, "consumerGroup", q.ConsumerGroup)
		if err != nil {
			return backup.MessagePage{}, err
		}
		prefix = concat(sid, cg)
		groupRE = cg
	}
	idRE := `\w{32}`
	if q.MessageID != "" {
		idRE = rowkey.MD5Key(q.MessageID)
	}
	// QMQ's buildDeadRegexp / buildDeadContentRegexp: only needed across
	// groups or for one id; within one group every key is in the range.
	if q.ConsumerGroup == "" || q.MessageID != "" {
		sc.Regexp = "^" + sid + groupRE + `\d{12}` + idRE
	}
	var first []byte
	if q.ConsumerGroup != "" {
		first = concat(string(prefix), s.timeKey(w.end))
		sc.Stop = prefixEnd(concat(string(prefix), s.timeKey(w.begin)))
	} else {
		first = concat(sid, rowkey.MinID, s.timeKey(w.end))
		sc.Stop = prefixEnd(concat(sid, rowkey.MaxID, s.timeKey(w.begin)))
	}
	valid := func(k []byte) error { _, err := rowkey.ParseDeadKey(k); return err }
	if sc.Start, err = startKey(first, q.Start, prefix, valid); err != nil {
		return backup.MessagePage{}, err
	}
	return s.page(ctx, sc, q, w, backup.KindDead, func(k []byte) (string, error) {
		p, err := rowkey.ParseDeadKey(k)
		if err != nil {
			return "", err
		}
		return s.dict.Name(ctx, p.ConsumerGroupID)
	})
}

// FindRetries pages through the retry copies of one message (q.MessageID,
// required), newest first: QMQ's retry rows, id("%RETRY%subject") + md5 +
// time + broker group + consumer group + sequence, so one id's copies are
// one range.
func (s *Store) FindRetries(ctx context.Context, q backup.MessageQuery) (backup.MessagePage, error) {
	if err := s.check(); err != nil {
		return backup.MessagePage{}, err
	}
	w, err := s.checkQuery(&q)
	if err != nil {
		return backup.MessagePage{}, err
	}
	if q.MessageID == "" {
		return backup.MessagePage{}, badQuery("messageId", "is required: retry copies are listed per message")
	}
	if _, err := s.lookup(ctx, "subject", q.Subject); err != nil {
		return backup.MessagePage{}, err
	}
	rsid, ok, err := s.dict.Lookup(ctx, rowkey.RetrySubject(q.Subject))
	if err != nil {
		return backup.MessagePage{}, fmt.Errorf("%s: %w", s.opts.Name, err)
	}
	if !ok {
		return backup.MessagePage{}, nil // the subject was never retried
	}
	md := rowkey.MD5Key(q.MessageID)
	prefix := concat(rsid, md)
	sc := Scan{Table: Messages, Batch: q.Len + 1}
	if q.ConsumerGroup != "" {
		cg, err := s.lookup(ctx, "consumerGroup", q.ConsumerGroup)
		if err != nil {
			return backup.MessagePage{}, err
		}
		sc.Regexp = "^" + rsid + md + `\d{12}\d{6}` + cg + `\d{19}$`
	}
	valid := func(k []byte) error { _, err := rowkey.ParseRetryKey(k); return err }
	if sc.Start, err = startKey(concat(string(prefix), s.timeKey(w.end)), q.Start, prefix, valid); err != nil {
		return backup.MessagePage{}, err
	}
	sc.Stop = prefixEnd(concat(string(prefix), s.timeKey(w.begin)))
	return s.page(ctx, sc, q, w, backup.KindRetry, func(k []byte) (string, error) {
		p, err := rowkey.ParseRetryKey(k)
		if err != nil {
			return "", err
		}
		return s.dict.Name(ctx, p.ConsumerGroupID)
	})
}

// page reads up to q.Len index rows of sc inside w, and the key of the
// next one as Next.
func (s *Store) page(ctx context.Context, sc Scan, q backup.MessageQuery, w window, kind backup.Kind, group func(key []byte) (string, error)) (backup.MessagePage, error) {
	var page backup.MessagePage
	var keys [][]byte // of page.Messages, for group
	var rowErr error
	var re *regexp.Regexp
	if sc.Regexp != "" {
		re = regexp.MustCompile(sc.Regexp) // built from digits and hex only
	}
	err := s.t.Scan(ctx, sc, func(k, v []byte) bool {
		if re != nil && !re.Match(k) {
			return true // backends may filter less than asked
		}
		iv, err := rowkey.DecodeIndexValue(v)
		if err != nil {
			rowErr = fmt.Errorf("row %q: %w", k, err)
			return false
		}
		if iv.CreateTimeMs < w.beginMs || iv.CreateTimeMs > w.endMs {
			return true
		}
		if q.MessageID != "" && iv.MessageID != q.MessageID {
			return true // an MD5 collision
		}
		if len(page.Messages) == q.Len {
			page.Next = string(k)
			return false
		}
		m := backup.Message{
			Subject: q.Subject, MessageID: iv.MessageID, BrokerGroup: iv.BrokerGroup,
			Sequence: iv.Sequence, CreateTime: time.UnixMilli(iv.CreateTimeMs), Kind: kind,
		}
		page.Messages = append(page.Messages, m)
		keys = append(keys, append([]byte(nil), k...))
		return true
	})
	if err == nil {
		err = rowErr
	}
	if err != nil {
		return backup.MessagePage{}, fmt.Errorf("%s: read %s: %w", s.opts.Name, sc.Table, err)
	}
	// Names are looked up after the scan: a backend may hold a lock for a
	// scan's whole length that its dictionary needs too.
	for i, k := range keys {
		if page.Messages[i].ConsumerGroup, err = group(k); err != nil {
			return backup.MessagePage{}, fmt.Errorf("%s: row %q: consumer group: %w", s.opts.Name, k, err)
		}
	}
	return page, nil
}

// FindMessage returns the message ref names: the normal message or a
// group's retry copy (whose content the store keeps only with
// backup.message.content; otherwise where the group's log holds it), or a
// group's dead letter (content from qmq_backup_dead_content).
func (s *Store) FindMessage(ctx context.Context, ref backup.MessageRef) (backup.Message, error) {
	if err := s.check(); err != nil {
		return backup.Message{}, err
	}
	if ref.Subject == "" {
		return backup.Message{}, badQuery("subject", "is required")
	}
	if ref.BrokerGroup == "" {
		return backup.Message{}, badQuery("brokerGroup", "is required")
	}
	seq, err := rowkey.SeqKey(ref.Sequence)
	if err != nil {
		return backup.Message{}, badQuery("sequence", "%v", err)
	}
	sid, err := s.lookup(ctx, "subject", ref.Subject)
	if err != nil {
		return backup.Message{}, err
	}
	bg, err := s.lookup(ctx, "brokerGroup", ref.BrokerGroup)
	if err != nil {
		return backup.Message{}, err
	}
	key, kind, what := rowkey.DetailKey(sid, bg, seq), ref.Which(), "message"
	if kind != backup.KindNormal {
		if ref.ConsumerGroup == "" {
			return backup.Message{}, badQuery("consumerGroup", "is required for a retry copy or a dead letter (the group whose %%RETRY%% or %%DEAD_RETRY%% subject holds it)")
		}
		cg, err := s.lookup(ctx, "consumerGroup", ref.ConsumerGroup)
		if err != nil {
			return backup.Message{}, err
		}
		if kind == backup.KindRetry {
			key, what = rowkey.RetryDetailKey(sid, bg, seq, cg), fmt.Sprintf("retry copy of consumer group %q", ref.ConsumerGroup)
		} else {
			key, what = rowkey.DeadDetailKey(sid, bg, seq, cg), fmt.Sprintf("dead letter of consumer group %q", ref.ConsumerGroup)
		}
	}
	v, ok, err := s.t.Get(ctx, Details, key)
	if err != nil {
		return backup.Message{}, fmt.Errorf("%s: read %s: %w", s.opts.Name, Details, err)
	}
	if !ok {
		return backup.Message{}, fmt.Errorf("%s: %s %d of subject %q in broker group %q: %w", s.opts.Name, what, ref.Sequence, ref.Subject, ref.BrokerGroup, backup.ErrNotFound)
	}
	d, err := rowkey.DecodeDetailValue(v)
	if err != nil {
		return backup.Message{}, fmt.Errorf("%s: %s row of %s/%s/%d: %w", s.opts.Name, Details, ref.Subject, ref.BrokerGroup, ref.Sequence, err)
	}
	m := backup.Message{
		Subject: ref.Subject, MessageID: d.MessageID, BrokerGroup: ref.BrokerGroup, Sequence: ref.Sequence,
		CreateTime: time.UnixMilli(d.CreateTimeMs), Kind: kind, ConsumerGroup: d.ConsumerGroup, Content: d.Content,
		LogOffset: d.LogOffset, Located: d.Located,
	}
	if kind == backup.KindDead {
		if m.Content, err = s.deadContent(ctx, sid, &m); err != nil {
			return backup.Message{}, err
		}
	}
	return m, nil
}

func (s *Store) deadContent(ctx context.Context, sid string, m *backup.Message) ([]byte, error) {
	cg, err := s.lookup(ctx, "consumerGroup", m.ConsumerGroup)
	if err != nil {
		return nil, err
	}
	key := rowkey.DeadKey(sid, cg, s.timeKey(m.CreateTime), rowkey.MD5Key(m.MessageID))
	v, ok, err := s.t.Get(ctx, DeadContent, key)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s.opts.Name, DeadContent, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: dead letter %q has no %s row %q: %w", s.opts.Name, m.MessageID, DeadContent, key, backup.ErrNotFound)
	}
	if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) != m.Sequence {
		return nil, fmt.Errorf("%s: %s row %q does not start with sequence %d", s.opts.Name, DeadContent, key, m.Sequence)
	}
	return append([]byte(nil), v[8:]...), nil
}
