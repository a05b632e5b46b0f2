package protocol

import (
	"strconv"
	"strings"
)

// Magic is the first header field of every frame.
const Magic uint32 = 0xDEC10ADE

// Protocol versions carried in Header.Version. Requests we originate use
// CurrentVersion; responses echo the version of the request they answer.
const (
	Version7       int16 = 7 // schedule time carried in the message header (delay messages)
	Version8       int16 = 8 // message tags
	Version9       int16 = 9 // pull-request filters
	CurrentVersion int16 = Version9
)

// Frame geometry.
const (
	// HeaderSize is the size of the fixed header we write and the minimum a
	// peer may declare.
	HeaderSize = 18
	// DefaultMaxFrameSize caps the "total" field of a frame (the bytes after the
	// length field). ReadFrame never accepts more, whatever the caller passes.
	DefaultMaxFrameSize = 64 << 20
	// MaxString16Len is the longest string a str16 field can carry.
	MaxString16Len = 1<<15 - 1
)

// Request codes (Header.Code of a request; Header.RequestCode of a response).
const (
	CodeSendMessage           int16 = 10
	CodePullMessage           int16 = 11
	CodeAckRequest            int16 = 12
	CodeSyncLogRequest        int16 = 20
	CodeSyncCheckpointRequest int16 = 21
	CodeQueryConsumerLag      int16 = 24
	CodeConsumeManage         int16 = 25
	CodeQueueCount            int16 = 26
	CodeActionOffsetRequest   int16 = 27
	CodeBrokerRegister        int16 = 30
	CodeClientRegister        int16 = 35
	CodeBrokerAcquireMeta     int16 = 40
	CodeHeartbeat             int16 = 100
)

// Response status codes (Header.Code of a response).
const (
	CodeSuccess      int16 = 0
	CodeUnknownCode  int16 = 3
	CodeNoMessage    int16 = 4
	CodeBrokerError  int16 = 51
	CodeBrokerReject int16 = 52
	CodeParamError   int16 = 53
)

// Per-message result codes in a SEND_MESSAGE response body.
const (
	SendSuccess            int32 = 0
	SendBrokerBusy         int32 = 1
	SendDuplicate          int32 = 2
	SendSubjectNotAssigned int32 = 3
	SendBrokerReadOnly     int32 = 4
	SendBlock              int32 = 5
	SendStoreError         int32 = 6
)

// RemarkDiskFull begins the remark of a SendBrokerReadOnly result the broker
// gives because its disk is full (ours: QMQ has no such remark; its clients
// see a read-only group and go to another). The rest of the remark says where
// and how much space is missing. Go producers do not try that group again
// for the message: freeing space takes an operator, not a retry.
const RemarkDiskFull = "disk full on broker "

// IsDiskFullRemark reports whether remark is a disk-full refusal.
func IsDiskFullRemark(remark string) bool { return strings.HasPrefix(remark, RemarkDiskFull) }

// Header.Flag values.
const (
	FlagRequest  int32 = 0
	FlagResponse int32 = 1
)

var requestNames = map[int16]string{
	CodeSendMessage:           "SEND_MESSAGE",
	CodePullMessage:           "PULL_MESSAGE",
	CodeAckRequest:            "ACK_REQUEST",
	CodeSyncLogRequest:        "SYNC_LOG_REQUEST",
	CodeSyncCheckpointRequest: "SYNC_CHECKPOINT_REQUEST",
	CodeQueryConsumerLag:      "QUERY_CONSUMER_LAG",
	CodeConsumeManage:         "CONSUME_MANAGE",
	CodeQueueCount:            "QUEUE_COUNT",
	CodeActionOffsetRequest:   "ACTION_OFFSET_REQUEST",
	CodeBrokerRegister:        "BROKER_REGISTER",
	CodeClientRegister:        "CLIENT_REGISTER",
	CodeBrokerAcquireMeta:     "BROKER_ACQUIRE_META",
	CodeHeartbeat:             "HEARTBEAT",
}

var responseNames = map[int16]string{
	CodeSuccess:      "SUCCESS",
	CodeUnknownCode:  "UNKNOWN_CODE",
	CodeNoMessage:    "NO_MESSAGE",
	CodeBrokerError:  "BROKER_ERROR",
	CodeBrokerReject: "BROKER_REJECT",
	CodeParamError:   "PARAM_ERROR",
}

// CodeName returns the QMQ name of a request code (isResponse false) or of a
// response status (isResponse true), for logs. Unknown values come back as
// "unknown(77)".
func CodeName(code int16, isResponse bool) string {
	names := requestNames
	if isResponse {
		names = responseNames
	}
	if n, ok := names[code]; ok {
		return n
	}
	return "unknown(" + strconv.Itoa(int(code)) + ")"
}

// SendCodeName names a per-message SEND_MESSAGE result code, for logs.
func SendCodeName(code int32) string {
	switch code {
	case SendSuccess:
		return "SUCCESS"
	case SendBrokerBusy:
		return "BROKER_BUSY"
	case SendDuplicate:
		return "MESSAGE_DUPLICATE"
	case SendSubjectNotAssigned:
		return "SUBJECT_NOT_ASSIGNED"
	case SendBrokerReadOnly:
		return "BROKER_READ_ONLY"
	case SendBlock:
		return "BLOCK"
	case SendStoreError:
		return "STORE_ERROR"
	}
	return "unknown(" + strconv.Itoa(int(code)) + ")"
}
