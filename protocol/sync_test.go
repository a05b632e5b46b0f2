package protocol

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// Golden bodies in the layout of QMQ's SlaveSyncClient / AbstractLogSyncWorker
// / HeartbeatSyncWorker / SyncCheckpointProcessor (big-endian).
var (
	goldenSyncLogRequest = bs{
		2,                               // syncType message
		0, 0, 0, 0, 0, 0x01, 0x86, 0xA0, // messageLogOffset 100000
		0, 0, 0, 0, 0, 0, 0, 0, // actionLogOffset 0
	}
	goldenSyncLogResponse = bs{
		0, 0, 0, 3, // size
		0, 0, 0, 0, 0, 0, 0, 42, // startOffset
		'a', 'b', 'c',
	}
	goldenSyncHeartbeat  = bs{0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9}
	goldenSyncCheckpoint = cat(bs{1}, bs{0, 0, 0, 2}, "m\n", bs{0, 0, 0, 3}, "a\n\n")
)

func TestSyncLogRequestGolden(t *testing.T) {
	r := SyncLogRequest{Type: SyncTypeMessage, MessageLogOffset: 100000}
	if enc := AppendSyncLogRequest(nil, r); !bytes.Equal(enc, goldenSyncLogRequest) {
		t.Fatalf("encoded % x, want % x", enc, goldenSyncLogRequest)
	}
	got, err := DecodeSyncLogRequest(append(bytes.Clone(goldenSyncLogRequest), 0xEE)) // trailing byte ignored
	if err != nil || got != r {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	_, err = DecodeSyncLogRequest(goldenSyncLogRequest[:16])
	if err == nil || !strings.Contains(err.Error(), "want 17") {
		t.Fatalf("short body: %v", err)
	}
	for typ, name := range map[uint8]string{1: "action", 2: "message", 3: "heartbeat", 4: "dispatch", 5: "index", 9: "unknown(9)"} {
		if got := SyncTypeName(typ); got != name {
			t.Errorf("SyncTypeName(%d) = %q, want %q", typ, got, name)
		}
	}
}

func TestSyncLogResponseGolden(t *testing.T) {
	r := SyncLogResponse{StartOffset: 42, Data: []byte("abc")}
	if enc := AppendSyncLogResponse(nil, r); !bytes.Equal(enc, goldenSyncLogResponse) {
		t.Fatalf("encoded % x", enc)
	}
	got, err := DecodeSyncLogResponse(goldenSyncLogResponse)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	empty, err := DecodeSyncLogResponse(AppendSyncLogResponseHeader(nil, 0, 7))
	if err != nil || empty.StartOffset != 7 || len(empty.Data) != 0 {
		t.Fatalf("empty response: %+v, %v", empty, err)
	}
	for name, body := range map[string][]byte{
		"negative size": cat(bs{0xFF, 0xFF, 0xFF, 0xFF}, make([]byte, 8)),
		"short data":    goldenSyncLogResponse[:14],
		"short header":  goldenSyncLogResponse[:11],
		"huge size":     cat(bs{0x7F, 0xFF, 0xFF, 0xFF}, make([]byte, 8)),
	} {
		if _, err := DecodeSyncLogResponse(body); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestSyncHeartbeatGolden(t *testing.T) {
	r := SyncHeartbeatResponse{MessageLogMaxOffset: 7, ActionLogMaxOffset: 9}
	if enc := AppendSyncHeartbeatResponse(nil, r); !bytes.Equal(enc, goldenSyncHeartbeat) {
		t.Fatalf("encoded % x", enc)
	}
	if got, err := DecodeSyncHeartbeatResponse(goldenSyncHeartbeat); err != nil || got != r {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, err := DecodeSyncHeartbeatResponse(goldenSyncHeartbeat[:15]); err == nil {
		t.Fatal("short heartbeat decoded")
	}
}

func TestSyncCheckpoint(t *testing.T) {
	v1 := SyncCheckpointResponse{Version: SyncCheckpointV1, MessageCheckpoint: []byte("m\n"), ActionCheckpoint: []byte("a\n\n")}
	if enc := AppendSyncCheckpointResponse(nil, &v1); !bytes.Equal(enc, goldenSyncCheckpoint) {
		t.Fatalf("encoded % x", enc)
	}
	got, err := DecodeSyncCheckpointResponse(goldenSyncCheckpoint)
	if err != nil || !reflect.DeepEqual(got, v1) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	v2 := v1
	v2.Version = SyncCheckpointV2
	v2.Replica = SyncReplicaInfo{MessageSegmentSize: 1 << 30, ActionSegmentSize: 100 << 20, MessageMinOffset: 1 << 30,
		MessageMaxOffset: 1<<31 + 5, ActionMinOffset: -1, ActionMaxOffset: 0}
	enc := AppendSyncCheckpointResponse(nil, &v2)
	if len(enc) != len(goldenSyncCheckpoint)+48 || !bytes.HasPrefix(enc[1:], goldenSyncCheckpoint[1:]) {
		t.Fatalf("V2 is not V1 plus 48 bytes: % x", enc)
	}
	if got, err := DecodeSyncCheckpointResponse(enc); err != nil || !reflect.DeepEqual(got, v2) {
		t.Fatalf("V2 decoded %+v, %v", got, err)
	}
	if _, err := DecodeSyncCheckpointResponse(enc[:len(enc)-1]); err == nil {
		t.Fatal("short V2 decoded")
	}
	if _, err := DecodeSyncCheckpointResponse(cat(bs{3}, goldenSyncCheckpoint[1:])); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("version 3: %v", err)
	}
	if _, err := DecodeSyncCheckpointResponse(cat(bs{1, 0x7F, 0, 0, 0})); err == nil {
		t.Fatal("huge checkpoint length decoded")
	}

	for body, want := range map[string]uint8{"": SyncCheckpointV1, "\x01": SyncCheckpointV1, "\x02": SyncCheckpointV2, "\x02xyz": SyncCheckpointV2} {
		if v, err := DecodeSyncCheckpointRequest([]byte(body)); err != nil || v != want {
			t.Errorf("request %q: %d, %v", body, v, err)
		}
	}
	if _, err := DecodeSyncCheckpointRequest([]byte{9}); err == nil {
		t.Error("request version 9 accepted")
	}
}

func FuzzDecodeSyncLogRequest(f *testing.F) {
	f.Add(goldenSyncLogRequest)
	f.Add(goldenSyncLogRequest[:9])
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeSyncLogRequest, func(dst []byte, r *SyncLogRequest) []byte { return AppendSyncLogRequest(dst, *r) }, true)
	})
}

func FuzzDecodeSyncLogResponse(f *testing.F) {
	f.Add(goldenSyncLogResponse)
	f.Add(AppendSyncLogResponseHeader(nil, 0, -1))
	f.Add(cat(bs{0x7F, 0xFF, 0xFF, 0xFF}, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeSyncLogResponse, func(dst []byte, r *SyncLogResponse) []byte { return AppendSyncLogResponse(dst, *r) }, true)
	})
}

func FuzzDecodeSyncHeartbeatResponse(f *testing.F) {
	f.Add(goldenSyncHeartbeat)
	f.Add(goldenSyncHeartbeat[:3])
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeSyncHeartbeatResponse, func(dst []byte, r *SyncHeartbeatResponse) []byte {
			return AppendSyncHeartbeatResponse(dst, *r)
		}, true)
	})
}

func FuzzDecodeSyncCheckpointRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Add([]byte{7, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeSyncCheckpointRequest(data)
		if err == nil && v != SyncCheckpointV1 && v != SyncCheckpointV2 {
			t.Fatalf("accepted version %d", v)
		}
	})
}

func FuzzDecodeSyncCheckpointResponse(f *testing.F) {
	f.Add(goldenSyncCheckpoint)
	v2 := SyncCheckpointResponse{Version: SyncCheckpointV2, MessageCheckpoint: []byte("2\n0\n"), Replica: SyncReplicaInfo{1, 2, 3, 4, 5, 6}}
	f.Add(AppendSyncCheckpointResponse(nil, &v2))
	f.Add(cat(bs{1, 0x7F, 0xFF, 0xFF, 0xFF}))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzFixed(t, data, DecodeSyncCheckpointResponse, AppendSyncCheckpointResponse, true)
	})
}
