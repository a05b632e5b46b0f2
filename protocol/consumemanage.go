package protocol

import "fmt"

// ConsumeFromTimestamp (ours) is a CONSUME_MANAGE code: move the group to
// the first message stored at or after a time. The time follows the code as
// an i64 of milliseconds since the epoch:
//
//	subject str16 | consumerGroup str16 | code i32 (3) | timestampMillis i64
//
// Java brokers read the first three fields only, do nothing for a code they
// do not know and answer SUCCESS with an empty body; our brokers answer
// with a ConsumeManageResult body, which is how a caller tells the two apart.
const ConsumeFromTimestamp int32 = 3

// AppendConsumeManageTimestamp appends a CONSUME_MANAGE body with code
// ConsumeFromTimestamp and its timestamp trailer.
func AppendConsumeManageTimestamp(dst []byte, subject, group string, timestampMillis int64) []byte {
	dst = AppendConsumeManageRequest(dst, &ConsumeManageRequest{Subject: subject, ConsumerGroup: group, Code: ConsumeFromTimestamp})
	return AppendInt64(dst, timestampMillis)
}

// DecodeConsumeManageTimestamp returns the timestamp trailer of a
// CONSUME_MANAGE body whose code is ConsumeFromTimestamp.
func DecodeConsumeManageTimestamp(body []byte) (int64, error) {
	d := NewDecoder(body)
	d.String16()
	d.String16()
	if code := d.Int32(); d.Err() == nil && code != ConsumeFromTimestamp {
		d.Failf("CONSUME_MANAGE code is %d, not %d (timestamp)", code, ConsumeFromTimestamp)
	}
	if d.Err() == nil && d.Remaining() < 8 {
		d.Failf("CONSUME_MANAGE code %d needs an i64 timestamp (milliseconds since the epoch) after the code; the body has %d more bytes", ConsumeFromTimestamp, d.Remaining())
	}
	ts := d.Int64()
	if err := d.Err(); err != nil {
		return 0, fmt.Errorf("decode CONSUME_MANAGE request: %w", err)
	}
	return ts, nil
}

// ConsumeManageResult (ours) is the body our brokers answer CONSUME_MANAGE
// with: where the group's cursor now is.
//
//	nextSequence i64 | messageTimestamp i64
//
// MessageTimestamp is when the message at NextSequence was stored, -1 when
// there is none yet (the cursor is past the last message).
type ConsumeManageResult struct {
	NextSequence     int64
	MessageTimestamp int64
}

// AppendConsumeManageResult appends v.
func AppendConsumeManageResult(dst []byte, v *ConsumeManageResult) []byte {
	dst = AppendInt64(dst, v.NextSequence)
	return AppendInt64(dst, v.MessageTimestamp)
}

// DecodeConsumeManageResult parses a CONSUME_MANAGE response body. ok is
// false for an empty body (a Java broker).
func DecodeConsumeManageResult(body []byte) (v ConsumeManageResult, ok bool, err error) {
	if len(body) == 0 {
		return ConsumeManageResult{}, false, nil
	}
	d := NewDecoder(body)
	v = ConsumeManageResult{NextSequence: d.Int64(), MessageTimestamp: d.Int64()}
	if err := d.Err(); err != nil {
		return ConsumeManageResult{}, false, fmt.Errorf("decode CONSUME_MANAGE response: %w", err)
	}
	return v, true, nil
}
