package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
)

// geometry is where a log's segments end: from base on every segment has
// size bytes (the sync handshake tells both). The master's answers hold
// whole records of one segment, and an EOF filler or a tail too short for
// one means "continue at the next segment".
type geometry struct{ base, size int64 }

func (g geometry) segmentEnd(off int64) int64 {
	return g.base + ((off-g.base)/g.size+1)*g.size
}

// splitSubject tells a stored subject's kind (reference §2.6: a retry of
// subject s for group g is stored under %RETRY%s%g, a dead letter under
// %DEAD_RETRY%s%g): a normal subject, or a retry
// or dead-letter copy of subject for consumer group.
func splitSubject(stored string) (subject, group string, kind backup.Kind) {
	for _, p := range [...]struct {
		prefix string
		kind   backup.Kind
	}{{protocol.DeadRetryPrefix, backup.KindDead}, {protocol.RetryPrefix, backup.KindRetry}} {
		rest, ok := strings.CutPrefix(stored, p.prefix)
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(rest, '%'); i > 0 && i < len(rest)-1 {
			return rest[:i], rest[i+1:], p.kind
		}
	}
	return stored, "", backup.KindNormal
}

// payloadHead reads what the index needs from a stored payload (reference
// §2.2): flag u8 | createTime i64 | expireOrSchedule i64 | subject str16 |
// messageId str16 | …, without decoding tags and attributes.
func payloadHead(p []byte) (createTime int64, messageID string, err error) {
	const fixed = 1 + 8 + 8
	if len(p) < fixed+2 {
		return 0, "", fmt.Errorf("payload of %d bytes is too short for a message header", len(p))
	}
	createTime = int64(binary.BigEndian.Uint64(p[1:]))
	i := fixed
	str := func() (string, bool) {
		if len(p) < i+2 {
			return "", false
		}
		n := int(int16(binary.BigEndian.Uint16(p[i:])))
		if n < 0 || len(p) < i+2+n {
			return "", false
		}
		s := string(p[i+2 : i+2+n])
		i += 2 + n
		return s, true
	}
	if _, ok := str(); !ok {
		return 0, "", errors.New("payload's subject is cut short")
	}
	id, ok := str()
	if !ok {
		return 0, "", errors.New("payload's message id is cut short")
	}
	return createTime, id, nil
}

// messageBatch is what one answer of the message log held.
type messageBatch struct {
	msgs []backup.Message
	// newest is the timestamp (ms) of the last message record (0: none).
	newest int64
	// bad counts records whose payload could not be read (logged, skipped:
	// the broker stored them, so they are whole records with a good CRC).
	bad int
}

// replayMessages turns the message-log bytes data, which start at off, into
// index entries of brokerGroup and returns them with the offset after the
// last whole unit read. Content is kept for dead letters always and for
// other messages when keepContent.
func replayMessages(data []byte, off int64, g geometry, brokerGroup string, keepContent bool) (messageBatch, int64, error) {
	var b messageBatch
	p := 0
	for p < len(data) {
		pos := off + int64(p)
		left := g.segmentEnd(pos) - pos
		if left < messagelog.MinRecordSize { // the segment's zero tail
			if int64(len(data)-p) >= left {
				p += int(left)
			}
			break
		}
		rec, n, err := messagelog.DecodeRecord(data[p:min(int64(len(data)), int64(p)+left)])
		if errors.Is(err, messagelog.ErrShort) {
			break // a record continues in the next answer
		}
		if err != nil {
			return b, off + int64(p), fmt.Errorf("message log at offset %d: %w", pos, err)
		}
		if rec.Attr == messagelog.AttrEOF {
			p += int(left) // the rest of the segment is filler
			break
		}
		p += n
		if rec.Attr != messagelog.AttrMessage {
			continue
		}
		created, id, err := payloadHead(rec.Payload)
		if err != nil {
			b.bad++
			continue
		}
		subject, group, kind := splitSubject(string(rec.Subject))
		m := backup.Message{Subject: subject, MessageID: id, BrokerGroup: brokerGroup, Sequence: rec.Sequence,
			CreateTime: time.UnixMilli(created), Kind: kind, ConsumerGroup: group, LogOffset: pos, Located: true}
		if kind == backup.KindDead || keepContent {
			m.Content = append([]byte(nil), rec.Payload...)
		}
		b.msgs = append(b.msgs, m)
		b.newest = rec.Timestamp
	}
	return b, off + int64(p), nil
}

// replayActions decodes the action-log bytes data, which start at off, and
// returns the actions with the offset after the last whole unit read.
func replayActions(data []byte, off int64, g geometry) ([]actionlog.Action, int64, error) {
	var out []actionlog.Action
	p := 0
	for p < len(data) {
		pos := off + int64(p)
		left := g.segmentEnd(pos) - pos
		if left < actionlog.MinFillerSize {
			if int64(len(data)-p) >= left {
				p += int(left)
			}
			break
		}
		a, rt, n, err := actionlog.DecodeAction(data[p:min(int64(len(data)), int64(p)+left)])
		if errors.Is(err, actionlog.ErrTruncated) {
			break
		}
		if err != nil {
			return out, off + int64(p), fmt.Errorf("action log at offset %d: %w", pos, err)
		}
		if rt == actionlog.RecordEOF {
			p += int(left)
			break
		}
		p += n
		if rt == actionlog.RecordAction {
			out = append(out, a)
		}
	}
	return out, off + int64(p), nil
}
