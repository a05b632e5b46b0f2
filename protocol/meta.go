package protocol

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Broker roles (BrokerAcquireMetaResponse.Role, BrokerRegisterRequest.Role).
const (
	RoleMaster      int32 = 0
	RoleSlave       int32 = 1
	RoleStandby     int32 = 2
	RoleDelay       int32 = 3
	RoleBackup      int32 = 4
	RoleDelayMaster int32 = 5
	RoleDelaySlave  int32 = 6
	RoleDelayBackup int32 = 7
)

// RoleName is QMQ's name of a broker role (BrokerRole), "role(n)" for a
// code QMQ does not define.
func RoleName(role int32) string {
	switch role {
	case RoleMaster:
		return "MASTER"
	case RoleSlave:
		return "SLAVE"
	case RoleStandby:
		return "STANDBY"
	case RoleDelay:
		return "DELAY"
	case RoleBackup:
		return "BACKUP"
	case RoleDelayMaster:
		return "DELAY_MASTER"
	case RoleDelaySlave:
		return "DELAY_SLAVE"
	case RoleDelayBackup:
		return "DELAY_BACKUP"
	}
	return "role(" + strconv.Itoa(int(role)) + ")"
}

// Broker group states. Untyped: BrokerRegisterRequest.State is an i32 and
// BrokerGroupInfo.State a u8 on the wire.
const (
	BrokerStateRW  = 1 // readable and writable
	BrokerStateR   = 2 // read only
	BrokerStateW   = 3 // write only
	BrokerStateNRW = 4 // neither (offline)
)

// BROKER_REGISTER request types.
const (
	BrokerRequestOnline    int32 = 0
	BrokerRequestHeartbeat int32 = 1
	BrokerRequestOffline   int32 = 2
)

// CLIENT_REGISTER request types.
const (
	ClientRequestOnline    int32 = 1
	ClientRequestHeartbeat int32 = 2
)

// Client types (ClientRegisterRequest.ClientTypeCode).
const (
	ClientTypeProducer      int32 = 1
	ClientTypeConsumer      int32 = 2
	ClientTypeOther         int32 = 3
	ClientTypeDelayProducer int32 = 4
)

// ClientRegisterResponse.OnOfflineState values.
const (
	ClientOnline  uint8 = 0
	ClientOffline uint8 = 1
)

// CONSUME_MANAGE codes (where a consumer group restarts).
const (
	ConsumeFromLatest   int32 = 1
	ConsumeFromEarliest int32 = 2
)

// BrokerAcquireMetaRequest is the BROKER_ACQUIRE_META (40) body: hostname
// str16 | port i32 [| syncPort i32]. SyncPort is our optional trailer; Java
// brokers omit it (decoded as 0) and Java metaservers ignore it.
type BrokerAcquireMetaRequest struct {
	Hostname string
	Port     int32
	SyncPort int32
}

// AppendBrokerAcquireMetaRequest appends v; the SyncPort trailer is written
// only when non-zero.
func AppendBrokerAcquireMetaRequest(dst []byte, v *BrokerAcquireMetaRequest) []byte {
	dst = AppendString16(dst, v.Hostname)
	dst = AppendInt32(dst, v.Port)
	if v.SyncPort != 0 {
		dst = AppendInt32(dst, v.SyncPort)
	}
	return dst
}

// DecodeBrokerAcquireMetaRequest parses a BROKER_ACQUIRE_META request body.
// Bytes after the fields are ignored, as QMQ's Java decoders do.
func DecodeBrokerAcquireMetaRequest(body []byte) (BrokerAcquireMetaRequest, error) {
	d := NewDecoder(body)
	v := BrokerAcquireMetaRequest{Hostname: d.String16(), Port: d.Int32()}
	if d.Remaining() >= 4 {
		v.SyncPort = d.Int32()
	}
	if err := d.Err(); err != nil {
		return BrokerAcquireMetaRequest{}, fmt.Errorf("decode BROKER_ACQUIRE_META request: %w", err)
	}
	return v, nil
}

// BrokerAcquireMetaResponse is the BROKER_ACQUIRE_META response body:
// groupName str16 | masterAddress str16 | role i32 [| slaveAddress str16].
// The trailing slaveAddress is ours: qmq-go's metaserver tells a master
// where its group's slave is registered (ip:syncPort, "" if the group has no
// slave row), so that it serves replication to that slave only; a Java
// broker ignores it, and a Java metaserver does not send it (SlaveKnown
// false).
type BrokerAcquireMetaResponse struct {
	GroupName     string
	MasterAddress string
	Role          int32
	SlaveAddress  string
	SlaveKnown    bool // SlaveAddress was sent
}

// AppendBrokerAcquireMetaResponse appends v (slaveAddress only if SlaveKnown).
func AppendBrokerAcquireMetaResponse(dst []byte, v *BrokerAcquireMetaResponse) []byte {
	dst = AppendString16(dst, v.GroupName)
	dst = AppendString16(dst, v.MasterAddress)
	dst = AppendInt32(dst, v.Role)
	if v.SlaveKnown {
		dst = AppendString16(dst, v.SlaveAddress)
	}
	return dst
}

// DecodeBrokerAcquireMetaResponse parses a BROKER_ACQUIRE_META response body.
// Trailing bytes that are not a slaveAddress are ignored, as Java does.
func DecodeBrokerAcquireMetaResponse(body []byte) (BrokerAcquireMetaResponse, error) {
	d := NewDecoder(body)
	v := BrokerAcquireMetaResponse{GroupName: d.String16(), MasterAddress: d.String16(), Role: d.Int32()}
	if err := d.Err(); err != nil {
		return BrokerAcquireMetaResponse{}, fmt.Errorf("decode BROKER_ACQUIRE_META response: %w", err)
	}
	if d.Remaining() >= 2 {
		t := NewDecoder(body[d.Offset():])
		if s := t.String16(); t.Err() == nil {
			v.SlaveAddress, v.SlaveKnown = s, true
		}
	}
	return v, nil
}

// BrokerRegisterRequest is the BROKER_REGISTER (30) body: requestType i32 |
// groupName str16 | brokerAddress str16 | role i32 | state i32. The response
// is an empty SUCCESS.
type BrokerRegisterRequest struct {
	RequestType   int32 // BrokerRequestOnline, BrokerRequestHeartbeat, BrokerRequestOffline
	GroupName     string
	BrokerAddress string // ip:port clients connect to
	Role          int32
	State         int32
}

// AppendBrokerRegisterRequest appends v.
func AppendBrokerRegisterRequest(dst []byte, v *BrokerRegisterRequest) []byte {
	dst = AppendInt32(dst, v.RequestType)
	dst = AppendString16(dst, v.GroupName)
	dst = AppendString16(dst, v.BrokerAddress)
	dst = AppendInt32(dst, v.Role)
	return AppendInt32(dst, v.State)
}

// DecodeBrokerRegisterRequest parses a BROKER_REGISTER request body.
func DecodeBrokerRegisterRequest(body []byte) (BrokerRegisterRequest, error) {
	d := NewDecoder(body)
	v := BrokerRegisterRequest{
		RequestType:   d.Int32(),
		GroupName:     d.String16(),
		BrokerAddress: d.String16(),
		Role:          d.Int32(),
		State:         d.Int32(),
	}
	if err := d.Err(); err != nil {
		return BrokerRegisterRequest{}, fmt.Errorf("decode BROKER_REGISTER request: %w", err)
	}
	return v, nil
}

// BrokerRegisterResponse is the body of a SUCCESS answer to a master's
// BROKER_REGISTER. QMQ's is empty; qmq-go's metaserver (ours) sends
// count i16 | count × subject str16: the subjects MarkReadonlyBrokerGroup
// has made read-only in the group ("*": all of them), so that the broker can
// report it (/health). A Java broker ignores the body; from a Java
// metaserver Known is false.
type BrokerRegisterResponse struct {
	ReadonlySubjects []string
	Known            bool // the body was sent
}

// AppendBrokerRegisterResponse appends v (nothing unless Known).
func AppendBrokerRegisterResponse(dst []byte, v *BrokerRegisterResponse) []byte {
	if !v.Known {
		return dst
	}
	n := min(len(v.ReadonlySubjects), math.MaxInt16)
	dst = AppendInt16(dst, int16(n))
	for _, s := range v.ReadonlySubjects[:n] {
		dst = AppendString16(dst, s)
	}
	return dst
}

// DecodeBrokerRegisterResponse parses a BROKER_REGISTER answer's body; an
// empty body is QMQ's (Known false).
func DecodeBrokerRegisterResponse(body []byte) (BrokerRegisterResponse, error) {
	if len(body) == 0 {
		return BrokerRegisterResponse{}, nil
	}
	d := NewDecoder(body)
	n := d.Int16()
	if n < 0 {
		d.Failf("negative readonly subject count %d", n)
	}
	v := BrokerRegisterResponse{Known: true, ReadonlySubjects: []string{}}
	for i := 0; i < int(n) && d.Err() == nil; i++ {
		v.ReadonlySubjects = append(v.ReadonlySubjects, d.String16())
	}
	if err := d.Err(); err != nil {
		return BrokerRegisterResponse{}, fmt.Errorf("decode BROKER_REGISTER response: %w", err)
	}
	return v, nil
}

// CLIENT_REGISTER map keys.
const (
	keySubject        = "subject"
	keyClientTypeCode = "clientTypeCode"
	keyAppCode        = "appCode"
	keyClientID       = "clientId"
	keyConsumerGroup  = "consumerGroup"
	keyRequestType    = "requestType"
	keyClientLDC      = "clientLDC"
)

func isClientRegisterKey(k string) bool {
	switch k {
	case keySubject, keyClientTypeCode, keyAppCode, keyClientID, keyConsumerGroup, keyRequestType, keyClientLDC:
		return true
	}
	return false
}

// ClientRegisterRequest is the CLIENT_REGISTER (35) body, which on the wire
// is a string map: count i16, then count × (key str16, value str16), in no
// particular order. Integers travel as decimal strings; a missing or
// unparseable clientTypeCode reads as ClientTypeOther and a missing or
// unparseable requestType as ClientRequestOnline (the Java defaults).
type ClientRegisterRequest struct {
	Subject        string
	ClientTypeCode int32
	AppCode        string
	ClientID       string
	ConsumerGroup  string
	RequestType    int32
	ClientLDC      string            // sent only when non-empty, as Java clients do
	Extra          map[string]string // any other keys, kept; nil if none
}

// AppendClientRegisterRequest appends v: the known keys in a fixed order
// (clientLDC only if set), then Extra keys sorted, skipping any Extra key
// that duplicates a known one.
func AppendClientRegisterRequest(dst []byte, v *ClientRegisterRequest) []byte {
	type kv struct{ k, v string }
	entries := []kv{
		{keySubject, v.Subject},
		{keyClientTypeCode, strconv.Itoa(int(v.ClientTypeCode))},
		{keyAppCode, v.AppCode},
		{keyClientID, v.ClientID},
		{keyConsumerGroup, v.ConsumerGroup},
		{keyRequestType, strconv.Itoa(int(v.RequestType))},
	}
	if v.ClientLDC != "" {
		entries = append(entries, kv{keyClientLDC, v.ClientLDC})
	}
	extra := make([]string, 0, len(v.Extra))
	for k := range v.Extra {
		if !isClientRegisterKey(k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		entries = append(entries, kv{k, v.Extra[k]})
	}
	if len(entries) > MaxString16Len {
		entries = entries[:MaxString16Len]
	}
	dst = AppendInt16(dst, int16(len(entries)))
	for _, e := range entries {
		dst = AppendString16(dst, e.k)
		dst = AppendString16(dst, e.v)
	}
	return dst
}

// DecodeClientRegisterRequest parses a CLIENT_REGISTER request body. A key
// that appears twice takes its last value, as in Java's HashMap.
func DecodeClientRegisterRequest(body []byte) (ClientRegisterRequest, error) {
	d := NewDecoder(body)
	n := int(d.Int16())
	switch {
	case d.Err() != nil:
	case n < 0:
		d.Failf("negative map size %d at offset 0", n)
	case n*4 > d.Remaining():
		d.Failf("map size %d needs at least %d bytes, have %d", n, n*4, d.Remaining())
	}
	v := ClientRegisterRequest{ClientTypeCode: ClientTypeOther, RequestType: ClientRequestOnline}
	for i := 0; i < n && d.Err() == nil; i++ {
		k, val := d.String16(), d.String16()
		if d.Err() != nil {
			break
		}
		switch k {
		case keySubject:
			v.Subject = val
		case keyClientTypeCode:
			v.ClientTypeCode = parseJavaInt(val, ClientTypeOther)
		case keyAppCode:
			v.AppCode = val
		case keyClientID:
			v.ClientID = val
		case keyConsumerGroup:
			v.ConsumerGroup = val
		case keyRequestType:
			v.RequestType = parseJavaInt(val, ClientRequestOnline)
		case keyClientLDC:
			v.ClientLDC = val
		default:
			if v.Extra == nil {
				v.Extra = make(map[string]string)
			}
			v.Extra[k] = val
		}
	}
	if err := d.Err(); err != nil {
		return ClientRegisterRequest{}, fmt.Errorf("decode CLIENT_REGISTER request: %w", err)
	}
	return v, nil
}

// parseJavaInt parses a decimal int32 the way Integer.parseInt does,
// returning def on failure.
func parseJavaInt(s string, def int32) int32 {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return def
	}
	return int32(n)
}

// BrokerGroupInfo is one broker group in a CLIENT_REGISTER response.
type BrokerGroupInfo struct {
	Name          string
	MasterAddress string // ip:port
	UpdateTime    int64
	State         uint8 // BrokerStateRW ... BrokerStateNRW
}

// ClientRegisterResponse is the CLIENT_REGISTER response body: timestamp i64 |
// subject str16 | consumerGroup str16 | onOfflineState u8 | clientTypeCode u8
// | groupCount i16 | groupCount × (name str16, masterAddress str16,
// updateTime i64, state u8) [| withheldCount i16 | withheldCount × (name
// str16, reason str16)]. The withheld trailer is ours: the groups of the
// subject's route the metaserver left out of this answer and why (read-only,
// no master online), so that a producer with no group left can say why. It
// is sent only when a group was withheld; Java clients ignore it, as they
// ignore any trailing bytes.
type ClientRegisterResponse struct {
	Timestamp      int64
	Subject        string
	ConsumerGroup  string
	OnOfflineState uint8 // ClientOnline or ClientOffline
	ClientTypeCode uint8
	Groups         []BrokerGroupInfo
	Withheld       []WithheldGroup
}

// WithheldGroup is a group of a subject's route left out of a CLIENT_REGISTER answer.
type WithheldGroup struct {
	Name   string
	Reason string // for people, e.g. "read-only (MarkReadonlyBrokerGroup)"
}

// AppendClientRegisterResponse appends v (at most 32767 groups).
func AppendClientRegisterResponse(dst []byte, v *ClientRegisterResponse) []byte {
	dst = AppendInt64(dst, v.Timestamp)
	dst = AppendString16(dst, v.Subject)
	dst = AppendString16(dst, v.ConsumerGroup)
	dst = append(dst, v.OnOfflineState, v.ClientTypeCode)
	groups := v.Groups
	if len(groups) > MaxString16Len {
		groups = groups[:MaxString16Len]
	}
	dst = AppendInt16(dst, int16(len(groups)))
	for i := range groups {
		g := &groups[i]
		dst = AppendString16(dst, g.Name)
		dst = AppendString16(dst, g.MasterAddress)
		dst = AppendInt64(dst, g.UpdateTime)
		dst = append(dst, g.State)
	}
	if len(v.Withheld) > 0 {
		withheld := v.Withheld[:min(len(v.Withheld), MaxString16Len)]
		dst = AppendInt16(dst, int16(len(withheld)))
		for _, w := range withheld {
			dst = AppendString16(dst, w.Name)
			dst = AppendString16(dst, w.Reason)
		}
	}
	return dst
}

// minGroupBytes is the smallest encoding of a BrokerGroupInfo.
const minGroupBytes = 2 + 2 + 8 + 1

// DecodeClientRegisterResponse parses a CLIENT_REGISTER response body.
func DecodeClientRegisterResponse(body []byte) (ClientRegisterResponse, error) {
	d := NewDecoder(body)
	v := ClientRegisterResponse{
		Timestamp:      d.Int64(),
		Subject:        d.String16(),
		ConsumerGroup:  d.String16(),
		OnOfflineState: d.Uint8(),
		ClientTypeCode: d.Uint8(),
	}
	at := d.Offset()
	n := int(d.Int16())
	switch {
	case d.Err() != nil:
	case n < 0:
		d.Failf("negative broker group count %d at offset %d", n, at)
	case n*minGroupBytes > d.Remaining():
		d.Failf("broker group count %d needs at least %d bytes, have %d", n, n*minGroupBytes, d.Remaining())
	case n > 0:
		v.Groups = make([]BrokerGroupInfo, 0, n)
		for i := 0; i < n && d.Err() == nil; i++ {
			v.Groups = append(v.Groups, BrokerGroupInfo{
				Name:          d.String16(),
				MasterAddress: d.String16(),
				UpdateTime:    d.Int64(),
				State:         d.Uint8(),
			})
		}
	}
	if err := d.Err(); err != nil {
		return ClientRegisterResponse{}, fmt.Errorf("decode CLIENT_REGISTER response: %w", err)
	}
	if d.Remaining() >= 2 {
		// Ours; a trailer that does not decode is ignored, as Java ignores trailing bytes.
		t := NewDecoder(body[d.Offset():])
		var withheld []WithheldGroup
		if n := int(t.Int16()); n > 0 && n*4 <= t.Remaining() {
			for i := 0; i < n && t.Err() == nil; i++ {
				withheld = append(withheld, WithheldGroup{Name: t.String16(), Reason: t.String16()})
			}
			if t.Err() == nil {
				v.Withheld = withheld
			}
		}
	}
	return v, nil
}

// ConsumeManageRequest is the CONSUME_MANAGE (25) body: subject str16 |
// consumerGroup str16 | code i32 (ConsumeFromLatest or ConsumeFromEarliest).
type ConsumeManageRequest struct {
	Subject       string
	ConsumerGroup string
	Code          int32
}

// AppendConsumeManageRequest appends v.
func AppendConsumeManageRequest(dst []byte, v *ConsumeManageRequest) []byte {
	dst = AppendString16(dst, v.Subject)
	dst = AppendString16(dst, v.ConsumerGroup)
	return AppendInt32(dst, v.Code)
}

// DecodeConsumeManageRequest parses a CONSUME_MANAGE request body.
func DecodeConsumeManageRequest(body []byte) (ConsumeManageRequest, error) {
	d := NewDecoder(body)
	v := ConsumeManageRequest{Subject: d.String16(), ConsumerGroup: d.String16(), Code: d.Int32()}
	if err := d.Err(); err != nil {
		return ConsumeManageRequest{}, fmt.Errorf("decode CONSUME_MANAGE request: %w", err)
	}
	return v, nil
}
