package rowkey

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// IndexValue is the cell of a qmq_backup or qmq_backup_dead row, as QMQ's
// MessageIndexBatchBackup writes it: sequence i64 | createTime i64 (ms) |
// brokerGroupLen i32 | brokerGroup | messageId (the rest).
type IndexValue struct {
	Sequence     int64
	CreateTimeMs int64
	BrokerGroup  string
	MessageID    string
}

// maxBrokerGroupLen is where QMQ's reader (HBaseIndexStore.getMessageMeta)
// gives up on a value; writing a longer name would make the row unreadable
// there.
const maxBrokerGroupLen = 200

// Encode appends v's bytes to b.
func (v IndexValue) Encode(b []byte) ([]byte, error) {
	if len(v.BrokerGroup) > maxBrokerGroupLen {
		return nil, fmt.Errorf("broker group %q is %d bytes long; QMQ's reader accepts at most %d", clip(v.BrokerGroup), len(v.BrokerGroup), maxBrokerGroupLen)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(v.Sequence))
	b = binary.BigEndian.AppendUint64(b, uint64(v.CreateTimeMs))
	b = binary.BigEndian.AppendUint32(b, uint32(len(v.BrokerGroup)))
	b = append(b, v.BrokerGroup...)
	return append(b, v.MessageID...), nil
}

// DecodeIndexValue decodes an IndexValue; the strings do not alias b.
func DecodeIndexValue(b []byte) (IndexValue, error) {
	if len(b) < 20 {
		return IndexValue{}, fmt.Errorf("index value is %d bytes; it needs at least 20", len(b))
	}
	n := binary.BigEndian.Uint32(b[16:])
	if n > maxBrokerGroupLen || int(n) > len(b)-20 {
		return IndexValue{}, fmt.Errorf("index value names a broker group of %d bytes in %d bytes", n, len(b))
	}
	return IndexValue{
		Sequence:     int64(binary.BigEndian.Uint64(b)),
		CreateTimeMs: int64(binary.BigEndian.Uint64(b[8:])),
		BrokerGroup:  string(b[20 : 20+n]),
		MessageID:    string(b[20+n:]),
	}, nil
}

// RecordValue is the cell of a qmq_backup_record row of a pull or ack, as
// QMQ's RecordBatchBackup writes it: timestamp i64 | consumerIdLen i16 |
// consumerId | groupLen i16 | group.
type RecordValue struct {
	TimestampMs   int64
	ConsumerID    string
	ConsumerGroup string
}

// Encode appends v's bytes to b.
func (v RecordValue) Encode(b []byte) ([]byte, error) {
	if len(v.ConsumerID) > math.MaxInt16 || len(v.ConsumerGroup) > math.MaxInt16 {
		return nil, fmt.Errorf("consumer id (%d bytes) or group (%d bytes) longer than %d bytes", len(v.ConsumerID), len(v.ConsumerGroup), math.MaxInt16)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(v.TimestampMs))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.ConsumerID)))
	b = append(b, v.ConsumerID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.ConsumerGroup)))
	return append(b, v.ConsumerGroup...), nil
}

var errShort = errors.New("value is truncated")

// DecodeRecordValue decodes a RecordValue; trailing bytes are an error.
func DecodeRecordValue(b []byte) (RecordValue, error) {
	if len(b) < 12 {
		return RecordValue{}, fmt.Errorf("record value is %d bytes; it needs at least 12: %w", len(b), errShort)
	}
	v := RecordValue{TimestampMs: int64(binary.BigEndian.Uint64(b))}
	n := int(binary.BigEndian.Uint16(b[8:]))
	if 10+n+2 > len(b) {
		return RecordValue{}, fmt.Errorf("record value: consumer id of %d bytes in %d: %w", n, len(b), errShort)
	}
	v.ConsumerID = string(b[10 : 10+n])
	o := 10 + n
	m := int(binary.BigEndian.Uint16(b[o:]))
	if o+2+m != len(b) {
		return RecordValue{}, fmt.Errorf("record value: consumer group of %d bytes at %d in %d bytes", m, o+2, len(b))
	}
	v.ConsumerGroup = string(b[o+2:])
	return v, nil
}

// DeadRecordValue is the cell of a qmq_backup_record row of a dead letter,
// as QMQ's DeadRecordBatchBackup writes it: sequence i64 | timestamp i64 |
// consumerGroup (the rest). QMQ writes the create time + 500 ms as the
// timestamp so the dead record sorts after the message's last ack.
type DeadRecordValue struct {
	Sequence      int64
	TimestampMs   int64
	ConsumerGroup string
}

// DeadRecordDelay is what QMQ adds to a dead letter's create time for its
// record's timestamp.
const DeadRecordDelay = 500

// Encode appends v's bytes to b.
func (v DeadRecordValue) Encode(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(v.Sequence))
	b = binary.BigEndian.AppendUint64(b, uint64(v.TimestampMs))
	return append(b, v.ConsumerGroup...)
}

// DecodeDeadRecordValue decodes a DeadRecordValue.
func DecodeDeadRecordValue(b []byte) (DeadRecordValue, error) {
	if len(b) < 16 {
		return DeadRecordValue{}, fmt.Errorf("dead record value is %d bytes; it needs at least 16: %w", len(b), errShort)
	}
	return DeadRecordValue{
		Sequence:      int64(binary.BigEndian.Uint64(b)),
		TimestampMs:   int64(binary.BigEndian.Uint64(b[8:])),
		ConsumerGroup: string(b[16:]),
	}, nil
}

// DetailKey (ours, not QMQ's) keys a normal message by where the broker
// stored it, for the detail query: subjectId + brokerGroupId + seq19 + "0".
// HBase keeps it in qmq_backup_detail, Pebble under its own table byte.
func DetailKey(subjectID, brokerGroupID, seqKey string) []byte {
	return cat(subjectID, brokerGroupID, seqKey, "0")
}

// DeadDetailKey (ours) keys a dead letter the same way, plus its consumer
// group: subjectId + brokerGroupId + seq19 + "2" + consumerGroupId. Each
// group's dead letters are numbered in their own log
// (%DEAD_RETRY%<subject>%<group>), so without the group two groups' dead
// letters of one subject share a sequence (and one row).
func DeadDetailKey(subjectID, brokerGroupID, seqKey, consumerGroupID string) []byte {
	return cat(subjectID, brokerGroupID, seqKey, "2", consumerGroupID)
}

// RetryDetailKey (ours) keys a retry copy likewise: subjectId +
// brokerGroupId + seq19 + "1" + consumerGroupId, the sequence being the
// copy's in %RETRY%<subject>%<group>, numbered per consumer group as dead
// letters are. QMQ's qmq_backup retry row (RetryKey) stays as QMQ writes
// it; this row only serves the detail query.
func RetryDetailKey(subjectID, brokerGroupID, seqKey, consumerGroupID string) []byte {
	return cat(subjectID, brokerGroupID, seqKey, "1", consumerGroupID)
}

// DetailKeyLen is the length of a DetailKey; a DeadDetailKey or
// RetryDetailKey is IDLen longer.
const DetailKeyLen = IDLen + IDLen + SeqLen + 1

// DetailValue (ours) is what the detail query needs of a message:
// createTime i64 | kind u8 [| logOffset i64 when kind has bit 0x80] |
// idLen u16 | messageId | groupLen u16 | consumerGroup | content (the
// rest, may be empty). The flag bit keeps rows written before the offset
// was recorded readable.
type DetailValue struct {
	CreateTimeMs int64
	Kind         byte
	// LogOffset is where the broker group's message log holds the record
	// (Located): the detail of a message kept without content is read
	// there from the slave.
	LogOffset     int64
	Located       bool
	MessageID     string
	ConsumerGroup string
	Content       []byte
}

const detailLocated = 0x80

// Encode appends v's bytes to b.
func (v DetailValue) Encode(b []byte) ([]byte, error) {
	if len(v.MessageID) > math.MaxUint16 || len(v.ConsumerGroup) > math.MaxUint16 {
		return nil, fmt.Errorf("message id (%d bytes) or consumer group (%d bytes) longer than %d bytes", len(v.MessageID), len(v.ConsumerGroup), math.MaxUint16)
	}
	if v.Kind&detailLocated != 0 {
		return nil, fmt.Errorf("kind %d is not a kind", v.Kind)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(v.CreateTimeMs))
	if v.Located {
		b = append(b, v.Kind|detailLocated)
		b = binary.BigEndian.AppendUint64(b, uint64(v.LogOffset))
	} else {
		b = append(b, v.Kind)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.MessageID)))
	b = append(b, v.MessageID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.ConsumerGroup)))
	b = append(b, v.ConsumerGroup...)
	return append(b, v.Content...), nil
}

// DecodeDetailValue decodes a DetailValue; Content is a copy.
func DecodeDetailValue(b []byte) (DetailValue, error) {
	if len(b) < 13 {
		return DetailValue{}, fmt.Errorf("detail value is %d bytes; it needs at least 13: %w", len(b), errShort)
	}
	v := DetailValue{CreateTimeMs: int64(binary.BigEndian.Uint64(b)), Kind: b[8]}
	h := 9 // where the message id's length is
	if v.Kind&detailLocated != 0 {
		if len(b) < 21 {
			return DetailValue{}, fmt.Errorf("detail value with a log offset is %d bytes; it needs at least 21: %w", len(b), errShort)
		}
		v.Kind &^= detailLocated
		v.Located, v.LogOffset = true, int64(binary.BigEndian.Uint64(b[9:]))
		h = 17
	}
	n := int(binary.BigEndian.Uint16(b[h:]))
	if h+2+n+2 > len(b) {
		return DetailValue{}, fmt.Errorf("detail value: message id of %d bytes in %d: %w", n, len(b), errShort)
	}
	v.MessageID = string(b[h+2 : h+2+n])
	o := h + 2 + n
	m := int(binary.BigEndian.Uint16(b[o:]))
	if o+2+m > len(b) {
		return DetailValue{}, fmt.Errorf("detail value: consumer group of %d bytes in %d: %w", m, len(b), errShort)
	}
	v.ConsumerGroup = string(b[o+2 : o+2+m])
	if rest := b[o+2+m:]; len(rest) > 0 {
		v.Content = append([]byte(nil), rest...)
	}
	return v, nil
}
