package protocol

import "fmt"

// CodeBrokerLease (ours; QMQ has no such request) is how brokers of a group
// with failover take, renew and inspect the group's master lease kept by the
// metaserver (services/metaserver, table broker_epoch). A Java metaserver
// answers it UNKNOWN_CODE, which brokers take as "no lease support".
const CodeBrokerLease int16 = 1036

// Lease operations.
const (
	LeaseClaim   uint8 = 1 // a master takes or renews its group's lease
	LeasePromote uint8 = 2 // a slave takes over an expired lease and becomes master
	LeaseStatus  uint8 = 3 // read the group's epochs
)

func init() { requestNames[CodeBrokerLease] = "BROKER_LEASE" }

// Why a BROKER_LEASE claim or promotion was refused. A refusal is answered
// BROKER_REJECT with an error body (str16 message, readable by
// DecodeErrorBody) followed by the reason (u8); a body without it decodes as
// LeaseRefusedOther.
const (
	LeaseRefusedOther         uint8 = 0 // not given, or none of the below
	LeaseRefusedHeld          uint8 = 1 // another broker holds the group's lease and it has not expired
	LeaseRefusedUnsafe        uint8 = 2 // a promotion that could lose acknowledged messages
	LeaseRefusedWrongRole     uint8 = 3 // the caller's registered role does not allow the operation
	LeaseRefusedUnknownBroker uint8 = 4 // the caller or its group is not registered
)

// AppendLeaseRefusal appends a refusal body: message str16 | reason u8.
func AppendLeaseRefusal(dst []byte, reason uint8, msg string) []byte {
	dst = AppendErrorBody(dst, msg)
	return AppendUint8(dst, reason)
}

// DecodeLeaseRefusal parses a refusal body. It never fails: what cannot be
// read is empty, or LeaseRefusedOther.
func DecodeLeaseRefusal(body []byte) (reason uint8, msg string) {
	d := NewDecoder(body)
	msg = d.String16()
	if d.Err() != nil {
		return LeaseRefusedOther, ""
	}
	reason = d.Uint8()
	if d.Err() != nil {
		return LeaseRefusedOther, msg
	}
	return reason, msg
}

// LeaseRequest is the body of BROKER_LEASE: op u8 | group str16 |
// hostname str16 | servePort i32 | address str16 | messageOffset i64 |
// actionOffset i64 | waitSlaveWrote u8 | ttlMillis i64.
type LeaseRequest struct {
	Op             uint8
	Group          string
	Hostname       string // with ServePort, the broker's row in the broker table
	ServePort      int32
	Address        string // ip:port the broker registers for clients
	MessageOffset  int64  // the end of the caller's message log
	ActionOffset   int64  // the end of the caller's action log
	WaitSlaveWrote bool   // the caller (a master) answers sends only once its slave wrote them
	TTLMillis      int64
}

// AppendLeaseRequest appends r's encoding.
func AppendLeaseRequest(dst []byte, r LeaseRequest) []byte {
	dst = AppendUint8(dst, r.Op)
	dst = AppendString16(dst, r.Group)
	dst = AppendString16(dst, r.Hostname)
	dst = AppendInt32(dst, r.ServePort)
	dst = AppendString16(dst, r.Address)
	dst = AppendInt64(dst, r.MessageOffset)
	dst = AppendInt64(dst, r.ActionOffset)
	dst = AppendUint8(dst, b2u(r.WaitSlaveWrote))
	return AppendInt64(dst, r.TTLMillis)
}

// DecodeLeaseRequest parses a BROKER_LEASE request body.
func DecodeLeaseRequest(body []byte) (LeaseRequest, error) {
	d := NewDecoder(body)
	r := LeaseRequest{Op: d.Uint8(), Group: d.String16(), Hostname: d.String16(), ServePort: d.Int32(), Address: d.String16(),
		MessageOffset: d.Int64(), ActionOffset: d.Int64(), WaitSlaveWrote: d.Uint8() != 0, TTLMillis: d.Int64()}
	if err := d.Err(); err != nil {
		return LeaseRequest{}, fmt.Errorf("decode BROKER_LEASE request: %w", err)
	}
	return r, nil
}

// LeaseEpoch is one term of a group's master: who held it and where its
// logs ended when it took over (the takeover point: a former master's bytes
// past it were never the group's).
type LeaseEpoch struct {
	Epoch         int64
	Holder        string // hostname:servePort
	Address       string // ip:port registered for clients
	MessageOffset int64
	ActionOffset  int64
}

// LeaseResponse is the body of a successful BROKER_LEASE answer: the
// group's current term (ExpiresInMillis ≤ 0: expired), whether its holder
// runs with wait.slave.wrote, and every term, oldest first: count i32 |
// (epoch i64 | holder str16 | address str16 | messageOffset i64 |
// actionOffset i64) × count | expiresIn i64 | waitSlaveWrote u8. The last
// term is the current one.
type LeaseResponse struct {
	Epochs          []LeaseEpoch
	ExpiresInMillis int64
	WaitSlaveWrote  bool
}

// Current is the latest term (zero if none).
func (r LeaseResponse) Current() LeaseEpoch {
	if len(r.Epochs) == 0 {
		return LeaseEpoch{}
	}
	return r.Epochs[len(r.Epochs)-1]
}

// AppendLeaseResponse appends r's encoding.
func AppendLeaseResponse(dst []byte, r LeaseResponse) []byte {
	dst = AppendInt32(dst, int32(len(r.Epochs)))
	for _, e := range r.Epochs {
		dst = AppendInt64(dst, e.Epoch)
		dst = AppendString16(dst, e.Holder)
		dst = AppendString16(dst, e.Address)
		dst = AppendInt64(dst, e.MessageOffset)
		dst = AppendInt64(dst, e.ActionOffset)
	}
	dst = AppendInt64(dst, r.ExpiresInMillis)
	return AppendUint8(dst, b2u(r.WaitSlaveWrote))
}

// DecodeLeaseResponse parses a BROKER_LEASE response body.
func DecodeLeaseResponse(body []byte) (LeaseResponse, error) {
	d := NewDecoder(body)
	n := int(d.Int32())
	if d.Err() == nil && (n < 0 || n > 1<<20) {
		d.Failf("BROKER_LEASE response has %d epochs", n)
	}
	var r LeaseResponse
	for i := 0; i < n && d.Err() == nil; i++ {
		r.Epochs = append(r.Epochs, LeaseEpoch{Epoch: d.Int64(), Holder: d.String16(), Address: d.String16(), MessageOffset: d.Int64(), ActionOffset: d.Int64()})
	}
	r.ExpiresInMillis = d.Int64()
	r.WaitSlaveWrote = d.Uint8() != 0
	if err := d.Err(); err != nil {
		return LeaseResponse{}, fmt.Errorf("decode BROKER_LEASE response: %w", err)
	}
	return r, nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
