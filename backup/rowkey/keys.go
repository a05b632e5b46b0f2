package rowkey

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Field widths of QMQ's row keys (BackupKeyGenerator's constants).
const (
	IDLen   = 6  // a dictionary id: subject, broker group, consumer group
	TimeLen = 12 // reversed yyMMddHHmmss
	MD5Len  = 32 // hex MD5 of the message id
	SeqLen  = 19 // zero-padded decimal sequence
)

// Key lengths.
const (
	MessageKeyLen    = IDLen + TimeLen + MD5Len
	RetryKeyLen      = IDLen + MD5Len + TimeLen + IDLen + IDLen + SeqLen
	DeadKeyLen       = IDLen + IDLen + TimeLen + MD5Len
	RecordKeyLen     = IDLen + SeqLen + IDLen + IDLen + 1
	DeadRecordKeyLen = IDLen + MD5Len + IDLen
)

// MinID and MaxID bound dictionary ids; QMQ scans a consumer-group range
// from MinID to MaxID.
const (
	MinID = "000000"
	MaxID = "999999"
)

// Retry and dead-letter subject names as QMQ's RetrySubjectUtils builds
// them: the dictionary holds "%RETRY%<subject>" (retry index keys and their
// records) and "%DEAD_RETRY%<subject>" (dead records).
const (
	RetryPrefix     = "%RETRY"
	DeadRetryPrefix = "%DEAD_RETRY"
)

// RetrySubject is the name whose id keys a subject's retry entries.
func RetrySubject(subject string) string { return RetryPrefix + "%" + subject }

// DeadRetrySubject is the name whose id keys a subject's dead records.
func DeadRetrySubject(subject string) string { return DeadRetryPrefix + "%" + subject }

// SplitSubject splits a stored subject "%RETRY%<subject>%<group>" or
// "%DEAD_RETRY%<subject>%<group>" into its parts; for any other subject it
// returns it with prefix "" and group "". Like QMQ, empty parts are
// skipped, and a name that does not split into three parts is taken as is.
func SplitSubject(stored string) (prefix, subject, group string) {
	var parts []string
	start := 0
	for i := 0; i <= len(stored); i++ {
		if i == len(stored) || stored[i] == '%' {
			if i > start {
				parts = append(parts, stored[start:i])
			}
			start = i + 1
		}
	}
	if len(parts) != 3 || (stored[0] != '%') {
		return "", stored, ""
	}
	switch "%" + parts[0] {
	case RetryPrefix, DeadRetryPrefix:
		return "%" + parts[0], parts[1], parts[2]
	}
	return "", stored, ""
}

// timeLayout is Go's spelling of QMQ's yyMMddHHmmss.
const timeLayout = "060102150405"

const maxTime = 999999999999

// TimeKey is QMQ's generateDateKey: 999999999999 − yyMMddHHmmss of t in
// loc, 12 digits. QMQ formats in the JVM's default time zone; loc must be
// the one the QMQ installation sharing the tables used (time.Local on the
// same hosts).
func TimeKey(t time.Time, loc *time.Location) string {
	v, _ := strconv.ParseInt(t.In(loc).Format(timeLayout), 10, 64)
	return fmt.Sprintf("%012d", maxTime-v)
}

// ParseTimeKey is the inverse of TimeKey, to the second.
func ParseTimeKey(k string, loc *time.Location) (time.Time, error) {
	if len(k) != TimeLen || !digits(k) {
		return time.Time{}, fmt.Errorf("time key %q is not 12 digits", k)
	}
	v, _ := strconv.ParseInt(k, 10, 64)
	t, err := time.ParseInLocation(timeLayout, fmt.Sprintf("%012d", maxTime-v), loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("time key %q: %w", k, err)
	}
	return t, nil
}

// MD5Key is QMQ's generateMD5Key: the lower-case hex MD5 of the UTF-8 id.
func MD5Key(messageID string) string {
	sum := md5.Sum([]byte(messageID))
	return hex.EncodeToString(sum[:])
}

// SeqKey is QMQ's generateDecimalFormatKey19. Sequences are never
// negative; a negative one is an error (QMQ would write a 20-character
// "-…" key that breaks every range).
func SeqKey(seq int64) (string, error) {
	if seq < 0 {
		return "", fmt.Errorf("sequence %d is negative", seq)
	}
	return fmt.Sprintf("%019d", seq), nil
}

// ValidID reports whether id is a 6-digit dictionary id.
func ValidID(id string) bool { return len(id) == IDLen && digits(id) }

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hexLower(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func cat(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// MessageKey is a qmq_backup row of a normal message:
// subjectId + timeKey + md5.
func MessageKey(subjectID, timeKey, md5Key string) []byte {
	return cat(subjectID, timeKey, md5Key)
}

// RetryKey is a qmq_backup row of a retry copy: id("%RETRY%subject") +
// md5 + timeKey + brokerGroupId + consumerGroupId + seq19.
func RetryKey(retrySubjectID, md5Key, timeKey, brokerGroupID, consumerGroupID, seqKey string) []byte {
	return cat(retrySubjectID, md5Key, timeKey, brokerGroupID, consumerGroupID, seqKey)
}

// DeadKey is a qmq_backup_dead and qmq_backup_dead_content row:
// subjectId + consumerGroupId + timeKey + md5.
func DeadKey(subjectID, consumerGroupID, timeKey, md5Key string) []byte {
	return cat(subjectID, consumerGroupID, timeKey, md5Key)
}

// RecordKey is a qmq_backup_record row of a pull or ack: subjectId + seq19
// + brokerGroupId + consumerGroupId + the action as one ASCII digit.
func RecordKey(subjectID, seqKey, brokerGroupID, consumerGroupID string, action byte) []byte {
	return cat(subjectID, seqKey, brokerGroupID, consumerGroupID, string(rune('0'+action)))
}

// DeadRecordKey is a qmq_backup_record row of a dead letter:
// id("%DEAD_RETRY%subject") + md5 + consumerGroupId.
func DeadRecordKey(deadSubjectID, md5Key, consumerGroupID string) []byte {
	return cat(deadSubjectID, md5Key, consumerGroupID)
}

// MessageKeyParts are the fields of a MessageKey.
type MessageKeyParts struct{ SubjectID, TimeKey, MD5 string }

// ParseMessageKey checks and splits a MessageKey.
func ParseMessageKey(k []byte) (MessageKeyParts, error) {
	s := string(k)
	if len(s) != MessageKeyLen || !digits(s[:IDLen+TimeLen]) || !hexLower(s[IDLen+TimeLen:]) {
		return MessageKeyParts{}, fmt.Errorf("%q is not a message row key (6-digit subject id, 12-digit time, 32 hex digits)", clip(s))
	}
	return MessageKeyParts{SubjectID: s[:IDLen], TimeKey: s[IDLen : IDLen+TimeLen], MD5: s[IDLen+TimeLen:]}, nil
}

// RetryKeyParts are the fields of a RetryKey.
type RetryKeyParts struct {
	SubjectID, MD5, TimeKey, BrokerGroupID, ConsumerGroupID string
	Sequence                                                int64
}

// ParseRetryKey checks and splits a RetryKey.
func ParseRetryKey(k []byte) (RetryKeyParts, error) {
	s := string(k)
	o := IDLen + MD5Len
	if len(s) != RetryKeyLen || !digits(s[:IDLen]) || !hexLower(s[IDLen:o]) || !digits(s[o:]) {
		return RetryKeyParts{}, fmt.Errorf("%q is not a retry row key", clip(s))
	}
	seq, err := strconv.ParseInt(s[o+TimeLen+2*IDLen:], 10, 64)
	if err != nil {
		return RetryKeyParts{}, fmt.Errorf("retry row key %q: sequence: %w", clip(s), err)
	}
	return RetryKeyParts{
		SubjectID: s[:IDLen], MD5: s[IDLen:o], TimeKey: s[o : o+TimeLen],
		BrokerGroupID: s[o+TimeLen : o+TimeLen+IDLen], ConsumerGroupID: s[o+TimeLen+IDLen : o+TimeLen+2*IDLen],
		Sequence: seq,
	}, nil
}

// DeadKeyParts are the fields of a DeadKey.
type DeadKeyParts struct{ SubjectID, ConsumerGroupID, TimeKey, MD5 string }

// ParseDeadKey checks and splits a DeadKey.
func ParseDeadKey(k []byte) (DeadKeyParts, error) {
	s := string(k)
	o := 2*IDLen + TimeLen
	if len(s) != DeadKeyLen || !digits(s[:o]) || !hexLower(s[o:]) {
		return DeadKeyParts{}, fmt.Errorf("%q is not a dead-letter row key (6-digit subject id, 6-digit group id, 12-digit time, 32 hex digits)", clip(s))
	}
	return DeadKeyParts{SubjectID: s[:IDLen], ConsumerGroupID: s[IDLen : 2*IDLen], TimeKey: s[2*IDLen : o], MD5: s[o:]}, nil
}

// RecordKeyParts are the fields of a RecordKey.
type RecordKeyParts struct {
	SubjectID                      string
	Sequence                       int64
	BrokerGroupID, ConsumerGroupID string
	Action                         byte
}

// ParseRecordKey checks and splits a RecordKey.
func ParseRecordKey(k []byte) (RecordKeyParts, error) {
	s := string(k)
	if len(s) != RecordKeyLen || !digits(s) {
		return RecordKeyParts{}, fmt.Errorf("%q is not a record row key", clip(s))
	}
	seq, err := strconv.ParseInt(s[IDLen:IDLen+SeqLen], 10, 64)
	if err != nil {
		return RecordKeyParts{}, fmt.Errorf("record row key %q: sequence: %w", clip(s), err)
	}
	o := IDLen + SeqLen
	return RecordKeyParts{
		SubjectID: s[:IDLen], Sequence: seq, BrokerGroupID: s[o : o+IDLen],
		ConsumerGroupID: s[o+IDLen : o+2*IDLen], Action: s[o+2*IDLen] - '0',
	}, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// IDIndexKey (ours, not QMQ's) keys a normal message by subject and id, so
// Pebble finds a message id without scanning the subject's time range:
// subjectId + md5 + timeKey + brokerGroupId + seq19. Its value is the
// message's IndexValue; the message's qmq_backup key is
// MessageKey(subjectId, timeKey, md5).
func IDIndexKey(subjectID, md5Key, timeKey, brokerGroupID, seqKey string) []byte {
	return cat(subjectID, md5Key, timeKey, brokerGroupID, seqKey)
}

// IDIndexKeyLen is the length of an IDIndexKey.
const IDIndexKeyLen = IDLen + MD5Len + TimeLen + IDLen + SeqLen

// ParseIDIndexKey checks an IDIndexKey and returns its subject id, md5 and
// time key.
func ParseIDIndexKey(k []byte) (subjectID, md5Key, timeKey string, err error) {
	s := string(k)
	o := IDLen + MD5Len
	if len(s) != IDIndexKeyLen || !digits(s[:IDLen]) || !hexLower(s[IDLen:o]) || !digits(s[o:]) {
		return "", "", "", fmt.Errorf("%q is not an id-index row key", clip(s))
	}
	return s[:IDLen], s[IDLen:o], s[o : o+TimeLen], nil
}

// MaxOrderedIDLen bounds the message ids an OrderedIDIndexKey holds as they
// are; longer ids (and ids with other bytes) go to the md5-keyed index.
const MaxOrderedIDLen = 128

// OrderedID returns the part of an OrderedIDIndexKey that names id — id
// and a space — when id is printable ASCII without spaces (0x21..0x7e) and
// at most MaxOrderedIDLen bytes: QMQ's ids ("yyMMdd.HHmmss.ip.pid.n") are.
// The space sorts below every byte an id may hold, so the keys of one id
// are together and before the keys of any longer id it begins.
func OrderedID(id string) (string, bool) {
	if id == "" || len(id) > MaxOrderedIDLen {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return "", false
		}
	}
	return id + " ", true
}

// OrderedIDIndexKey (ours) keys a normal message by subject and its id as
// it is: subjectId + OrderedID(id) + timeKey + brokerGroupId + seq19. QMQ's
// ids begin with their creation time, so the messages written one after the
// other land next to each other in the key space; IDIndexKey's md5 spread
// them over all of it, and Pebble rewrote the whole index on every
// compaction (half of a backup's write cost, TestPerfWriteRate). The value
// is the message's IndexValue, as IDIndexKey's.
func OrderedIDIndexKey(subjectID, orderedID, timeKey, brokerGroupID, seqKey string) []byte {
	return cat(subjectID, orderedID, timeKey, brokerGroupID, seqKey)
}

// ParseOrderedIDIndexKey checks an OrderedIDIndexKey and returns its
// subject id, message id and time key.
func ParseOrderedIDIndexKey(k []byte) (subjectID, messageID, timeKey string, err error) {
	s := string(k)
	tail := TimeLen + IDLen + SeqLen
	sp := strings.IndexByte(s, ' ')
	if len(s) < IDLen+2+tail || !digits(s[:IDLen]) || sp <= IDLen || len(s)-sp-1 != tail || !digits(s[sp+1:]) {
		return "", "", "", fmt.Errorf("%q is not an ordered id-index row key", clip(s))
	}
	if _, ok := OrderedID(s[IDLen:sp]); !ok {
		return "", "", "", fmt.Errorf("%q is not an ordered id-index row key", clip(s))
	}
	return s[:IDLen], s[IDLen:sp], s[sp+1 : sp+1+TimeLen], nil
}
