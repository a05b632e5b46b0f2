package protocol

import "fmt"

// Sync types of a SYNC_LOG_REQUEST (QMQ's SyncType). Dispatch and index are
// the delay server's and the backup server's; a broker master answers them
// with BROKER_ERROR, as QMQ's does.
const (
	SyncTypeAction    uint8 = 1
	SyncTypeMessage   uint8 = 2
	SyncTypeHeartbeat uint8 = 3
	SyncTypeDispatch  uint8 = 4
	SyncTypeIndex     uint8 = 5
)

// SyncTypeName names a sync type for logs and metric labels.
func SyncTypeName(t uint8) string {
	switch t {
	case SyncTypeAction:
		return "action"
	case SyncTypeMessage:
		return "message"
	case SyncTypeHeartbeat:
		return "heartbeat"
	case SyncTypeDispatch:
		return "dispatch"
	case SyncTypeIndex:
		return "index"
	}
	return fmt.Sprintf("unknown(%d)", t)
}

// SyncLogRequestSize is the size of a SYNC_LOG_REQUEST body.
const SyncLogRequestSize = 1 + 8 + 8

// SyncLogRequest is the body of SYNC_LOG_REQUEST (20):
//
//	syncType u8 | messageLogOffset i64 | actionLogOffset i64
//
// A slave sends it in a loop per log. The offset of the requested log is
// where the slave's copy ends (so it is also how far the slave has written);
// QMQ's slave sends 0 for the other log. A heartbeat carries both of the
// slave's ends.
type SyncLogRequest struct {
	Type             uint8
	MessageLogOffset int64
	ActionLogOffset  int64
}

// AppendSyncLogRequest appends r's wire form.
func AppendSyncLogRequest(dst []byte, r SyncLogRequest) []byte {
	dst = append(dst, r.Type)
	dst = AppendInt64(dst, r.MessageLogOffset)
	return AppendInt64(dst, r.ActionLogOffset)
}

// DecodeSyncLogRequest parses a SYNC_LOG_REQUEST body. Trailing bytes are
// ignored, as Java does. It does not judge the type or the offsets.
func DecodeSyncLogRequest(body []byte) (SyncLogRequest, error) {
	d := NewDecoder(body)
	r := SyncLogRequest{Type: d.Uint8(), MessageLogOffset: d.Int64(), ActionLogOffset: d.Int64()}
	if err := d.Err(); err != nil {
		return SyncLogRequest{}, fmt.Errorf("SYNC_LOG_REQUEST body of %d bytes (want %d): %w", len(body), SyncLogRequestSize, err)
	}
	return r, nil
}

// SyncLogResponseHeaderSize is the part of a SYNC_LOG_REQUEST response
// before the raw log bytes.
const SyncLogResponseHeaderSize = 4 + 8

// SyncLogResponse is the SUCCESS response to a message or action
// SYNC_LOG_REQUEST:
//
//	size i32 | startOffset i64 | size raw log bytes
//
// Data are the master's log bytes from StartOffset (empty when the master
// has nothing newer). Data aliases the decoded body.
type SyncLogResponse struct {
	StartOffset int64
	Data        []byte
}

// AppendSyncLogResponseHeader appends the size and start offset; the caller
// appends the size raw bytes.
func AppendSyncLogResponseHeader(dst []byte, size int, startOffset int64) []byte {
	dst = AppendInt32(dst, int32(size))
	return AppendInt64(dst, startOffset)
}

// AppendSyncLogResponse appends the whole response body.
func AppendSyncLogResponse(dst []byte, r SyncLogResponse) []byte {
	dst = AppendSyncLogResponseHeader(dst, len(r.Data), r.StartOffset)
	return append(dst, r.Data...)
}

// DecodeSyncLogResponse parses a SYNC_LOG_REQUEST response body. The size
// must be non-negative and the bytes present; trailing bytes are ignored.
func DecodeSyncLogResponse(body []byte) (SyncLogResponse, error) {
	d := NewDecoder(body)
	size := d.Int32()
	start := d.Int64()
	if d.Err() == nil && size < 0 {
		d.Failf("negative sync data size %d", size)
	}
	data := d.Raw(int(size))
	if err := d.Err(); err != nil {
		return SyncLogResponse{}, fmt.Errorf("SYNC_LOG_REQUEST response of %d bytes: %w", len(body), err)
	}
	return SyncLogResponse{StartOffset: start, Data: data}, nil
}

// SyncHeartbeatResponseSize is the size of a heartbeat response body.
const SyncHeartbeatResponseSize = 8 + 8

// SyncHeartbeatResponse is the SUCCESS response to a heartbeat
// SYNC_LOG_REQUEST: the master's log ends.
//
//	messageLogMaxOffset i64 | actionLogMaxOffset i64
type SyncHeartbeatResponse struct {
	MessageLogMaxOffset int64
	ActionLogMaxOffset  int64
}

// AppendSyncHeartbeatResponse appends r's wire form.
func AppendSyncHeartbeatResponse(dst []byte, r SyncHeartbeatResponse) []byte {
	dst = AppendInt64(dst, r.MessageLogMaxOffset)
	return AppendInt64(dst, r.ActionLogMaxOffset)
}

// DecodeSyncHeartbeatResponse parses a heartbeat response; trailing bytes are ignored.
func DecodeSyncHeartbeatResponse(body []byte) (SyncHeartbeatResponse, error) {
	d := NewDecoder(body)
	r := SyncHeartbeatResponse{MessageLogMaxOffset: d.Int64(), ActionLogMaxOffset: d.Int64()}
	if err := d.Err(); err != nil {
		return SyncHeartbeatResponse{}, fmt.Errorf("sync heartbeat response of %d bytes (want %d): %w", len(body), SyncHeartbeatResponseSize, err)
	}
	return r, nil
}

// SYNC_CHECKPOINT_REQUEST response versions.
const (
	// SyncCheckpointV1 is QMQ's: the two checkpoints only. A request with an
	// empty body (what Java slaves send) gets it.
	SyncCheckpointV1 uint8 = 1
	// SyncCheckpointV2 is ours: V1 followed by SyncReplicaInfo. A request
	// whose body is the single byte 2 gets it.
	SyncCheckpointV2 uint8 = 2
)

// DecodeSyncCheckpointRequest returns the response version a
// SYNC_CHECKPOINT_REQUEST asks for: V1 for an empty body (Java), else the
// version byte of the body, which must be V1 or V2. Trailing bytes are ignored.
func DecodeSyncCheckpointRequest(body []byte) (uint8, error) {
	if len(body) == 0 {
		return SyncCheckpointV1, nil
	}
	switch v := body[0]; v {
	case SyncCheckpointV1, SyncCheckpointV2:
		return v, nil
	default:
		return 0, fmt.Errorf("SYNC_CHECKPOINT_REQUEST asks for response version %d; this master knows versions 1 and 2", v)
	}
}

// SyncReplicaInfo is what a V2 checkpoint response adds: the master's
// segment sizes (a slave's must be equal, since raw bytes land at the same
// offsets) and, per log, the oldest offset a slave can copy from (a segment
// base; -1 if none can be copied yet) and the end.
type SyncReplicaInfo struct {
	MessageSegmentSize int64
	ActionSegmentSize  int64
	MessageMinOffset   int64
	MessageMaxOffset   int64
	ActionMinOffset    int64
	ActionMaxOffset    int64
}

// SyncCheckpointResponse is the SUCCESS response to SYNC_CHECKPOINT_REQUEST:
//
//	version u8 | len i32 | message checkpoint | len i32 | action checkpoint
//	[V2: messageSegmentSize i64 | actionSegmentSize i64 |
//	     messageMinOffset i64 | messageMaxOffset i64 |
//	     actionMinOffset i64 | actionMaxOffset i64]
//
// The checkpoints are in storage/checkpoint's text formats. Byte slices
// alias the decoded body.
type SyncCheckpointResponse struct {
	Version           uint8
	MessageCheckpoint []byte
	ActionCheckpoint  []byte
	Replica           SyncReplicaInfo // V2 only
}

// AppendSyncCheckpointResponse appends r's wire form for r.Version (V1
// unless it is V2).
func AppendSyncCheckpointResponse(dst []byte, r *SyncCheckpointResponse) []byte {
	v := r.Version
	if v != SyncCheckpointV2 {
		v = SyncCheckpointV1
	}
	dst = append(dst, v)
	dst = AppendBytes32(dst, r.MessageCheckpoint)
	dst = AppendBytes32(dst, r.ActionCheckpoint)
	if v == SyncCheckpointV2 {
		i := &r.Replica
		for _, x := range [...]int64{i.MessageSegmentSize, i.ActionSegmentSize, i.MessageMinOffset, i.MessageMaxOffset, i.ActionMinOffset, i.ActionMaxOffset} {
			dst = AppendInt64(dst, x)
		}
	}
	return dst
}

// DecodeSyncCheckpointResponse parses a SYNC_CHECKPOINT_REQUEST response of
// version 1 or 2; trailing bytes are ignored.
func DecodeSyncCheckpointResponse(body []byte) (SyncCheckpointResponse, error) {
	d := NewDecoder(body)
	var r SyncCheckpointResponse
	r.Version = d.Uint8()
	if d.Err() == nil && r.Version != SyncCheckpointV1 && r.Version != SyncCheckpointV2 {
		d.Failf("unknown sync checkpoint version %d (want 1 or 2)", r.Version)
	}
	r.MessageCheckpoint = d.Bytes32()
	r.ActionCheckpoint = d.Bytes32()
	if r.Version == SyncCheckpointV2 {
		i := &r.Replica
		for _, p := range [...]*int64{&i.MessageSegmentSize, &i.ActionSegmentSize, &i.MessageMinOffset, &i.MessageMaxOffset, &i.ActionMinOffset, &i.ActionMaxOffset} {
			*p = d.Int64()
		}
	}
	if err := d.Err(); err != nil {
		return SyncCheckpointResponse{}, fmt.Errorf("SYNC_CHECKPOINT_REQUEST response of %d bytes: %w", len(body), err)
	}
	return r, nil
}
