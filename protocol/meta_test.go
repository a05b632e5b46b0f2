package protocol

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// cat concatenates literal byte and string pieces of a golden encoding.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b = append(b, v...)
		case string:
			b = append(b, v...)
		default:
			panic("cat: bad part")
		}
	}
	return b
}

type bs = []byte

var goldenAcquireMetaResponse = cat(
	bs{0x00, 0x08}, "broker-0",
	bs{0x00, 0x0E}, "10.0.0.1:20882",
	bs{0x00, 0x00, 0x00, 0x01}, // role SLAVE
)

var goldenBrokerRegister = cat(
	bs{0x00, 0x00, 0x00, 0x01}, // HEARTBEAT
	bs{0x00, 0x08}, "broker-0",
	bs{0x00, 0x0E}, "10.0.0.1:20881",
	bs{0x00, 0x00, 0x00, 0x00}, // MASTER
	bs{0x00, 0x00, 0x00, 0x01}, // RW
)

var goldenClientRegister = cat(
	bs{0x00, 0x07}, // 7 entries
	bs{0x00, 0x07}, "subject", bs{0x00, 0x0D}, "order.created",
	bs{0x00, 0x0E}, "clientTypeCode", bs{0x00, 0x01}, "2",
	bs{0x00, 0x07}, "appCode", bs{0x00, 0x04}, "app1",
	bs{0x00, 0x08}, "clientId", bs{0x00, 0x0A}, "host1@@abc",
	bs{0x00, 0x0D}, "consumerGroup", bs{0x00, 0x03}, "grp",
	bs{0x00, 0x0B}, "requestType", bs{0x00, 0x01}, "1",
	bs{0x00, 0x09}, "clientLDC", bs{0x00, 0x03}, "cn1",
)

var goldenClientRegisterStruct = ClientRegisterRequest{
	Subject:        "order.created",
	ClientTypeCode: ClientTypeConsumer,
	AppCode:        "app1",
	ClientID:       "host1@@abc",
	ConsumerGroup:  "grp",
	RequestType:    ClientRequestOnline,
	ClientLDC:      "cn1",
}

var goldenClientRegisterResponse = cat(
	bs{0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00}, // timestamp 1700000000000
	bs{0x00, 0x0D}, "order.created",
	bs{0x00, 0x03}, "grp",
	bs{0x00},       // online
	bs{0x02},       // consumer
	bs{0x00, 0x02}, // 2 groups
	bs{0x00, 0x08}, "broker-0", bs{0x00, 0x0E}, "10.0.0.1:20881",
	bs{0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x01}, bs{0x01},
	bs{0x00, 0x08}, "broker-1", bs{0x00, 0x0E}, "10.0.0.2:20881",
	bs{0, 0, 0, 0, 0, 0, 0, 5}, bs{0x02},
)

var goldenClientRegisterResponseStruct = ClientRegisterResponse{
	Timestamp:      1700000000000,
	Subject:        "order.created",
	ConsumerGroup:  "grp",
	OnOfflineState: ClientOnline,
	ClientTypeCode: 2,
	Groups: []BrokerGroupInfo{
		{Name: "broker-0", MasterAddress: "10.0.0.1:20881", UpdateTime: 1700000000001, State: BrokerStateRW},
		{Name: "broker-1", MasterAddress: "10.0.0.2:20881", UpdateTime: 5, State: BrokerStateR},
	},
}

var goldenConsumeManage = cat(bs{0x00, 0x01}, "s", bs{0x00, 0x01}, "g", bs{0x00, 0x00, 0x00, 0x02})

func TestBrokerAcquireMeta(t *testing.T) {
	// Request without and with our syncPort trailer.
	plain := cat(bs{0x00, 0x0C}, "qmq-server01", bs{0x00, 0x00, 0x51, 0x91})
	if got := AppendBrokerAcquireMetaRequest(nil, &BrokerAcquireMetaRequest{Hostname: "qmq-server01", Port: 20881}); !bytes.Equal(got, plain) {
		t.Fatalf("% x", got)
	}
	withSync := cat(plain, bs{0x00, 0x00, 0x51, 0x92})
	req := BrokerAcquireMetaRequest{Hostname: "qmq-server01", Port: 20881, SyncPort: 20882}
	if got := AppendBrokerAcquireMetaRequest(nil, &req); !bytes.Equal(got, withSync) {
		t.Fatalf("% x", got)
	}
	if v, err := DecodeBrokerAcquireMetaRequest(withSync); err != nil || v != req {
		t.Fatalf("%+v %v", v, err)
	}
	if v, err := DecodeBrokerAcquireMetaRequest(cat(plain, bs{1, 2})); err != nil || v.SyncPort != 0 {
		t.Fatalf("short trailer must be ignored: %+v %v", v, err)
	}
	_, err := DecodeBrokerAcquireMetaRequest(plain[:15])
	if err == nil || err.Error() != "decode BROKER_ACQUIRE_META request: need 4 bytes for int32 at offset 14, have 1" {
		t.Fatalf("%v", err)
	}

	resp := BrokerAcquireMetaResponse{GroupName: "broker-0", MasterAddress: "10.0.0.1:20882", Role: RoleSlave}
	if got := AppendBrokerAcquireMetaResponse(nil, &resp); !bytes.Equal(got, goldenAcquireMetaResponse) {
		t.Fatalf("% x", got)
	}
	if v, err := DecodeBrokerAcquireMetaResponse(goldenAcquireMetaResponse); err != nil || v != resp {
		t.Fatalf("%+v %v", v, err)
	}
	if _, err := DecodeBrokerAcquireMetaResponse(goldenAcquireMetaResponse[:3]); err == nil ||
		!strings.HasPrefix(err.Error(), "decode BROKER_ACQUIRE_META response: need 8 bytes for string at offset 2, have 1") {
		t.Fatalf("%v", err)
	}
}

func TestBrokerRegister(t *testing.T) {
	v := BrokerRegisterRequest{RequestType: BrokerRequestHeartbeat, GroupName: "broker-0", BrokerAddress: "10.0.0.1:20881", Role: RoleMaster, State: BrokerStateRW}
	if got := AppendBrokerRegisterRequest(nil, &v); !bytes.Equal(got, goldenBrokerRegister) {
		t.Fatalf("% x", got)
	}
	if got, err := DecodeBrokerRegisterRequest(goldenBrokerRegister); err != nil || got != v {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeBrokerRegisterRequest(goldenBrokerRegister[:len(goldenBrokerRegister)-1]); err == nil ||
		err.Error() != "decode BROKER_REGISTER request: need 4 bytes for int32 at offset 34, have 3" {
		t.Fatalf("%v", err)
	}
}

func TestClientRegisterRequest(t *testing.T) {
	v := goldenClientRegisterStruct
	if got := AppendClientRegisterRequest(nil, &v); !bytes.Equal(got, goldenClientRegister) {
		t.Fatalf("encoded\n got %q\nwant %q", got, goldenClientRegister)
	}
	got, err := DecodeClientRegisterRequest(goldenClientRegister)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("%+v %v", got, err)
	}

	// Java sends HashMap order, may omit keys, and may carry keys we don't
	// know; a repeated key keeps its last value.
	java := cat(
		bs{0x00, 0x06},
		bs{0x00, 0x0B}, "requestType", bs{0x00, 0x01}, "2",
		bs{0x00, 0x03}, "env", bs{0x00, 0x04}, "prod",
		bs{0x00, 0x07}, "subject", bs{0x00, 0x01}, "a",
		bs{0x00, 0x0E}, "clientTypeCode", bs{0x00, 0x03}, "abc", // unparseable: OTHER
		bs{0x00, 0x07}, "subject", bs{0x00, 0x01}, "b",
		bs{0x00, 0x00}, bs{0x00, 0x00}, // empty key
	)
	got, err = DecodeClientRegisterRequest(java)
	if err != nil {
		t.Fatal(err)
	}
	want := ClientRegisterRequest{Subject: "b", ClientTypeCode: ClientTypeOther, RequestType: ClientRequestHeartbeat,
		Extra: map[string]string{"env": "prod", "": ""}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	// Re-encoding: known keys first (clientLDC omitted when empty), extras sorted.
	re := AppendClientRegisterRequest(nil, &got)
	again, err := DecodeClientRegisterRequest(re)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("re-decode %+v %v", again, err)
	}
	if re[1] != 8 {
		t.Fatalf("entry count %d, want 6 known + 2 extra", re[1])
	}

	// Empty map: Java defaults.
	got, err = DecodeClientRegisterRequest(bs{0, 0})
	if err != nil || got.ClientTypeCode != ClientTypeOther || got.RequestType != ClientRequestOnline {
		t.Fatalf("%+v %v", got, err)
	}

	for _, c := range []struct {
		body bs
		want string
	}{
		{bs{0xFF, 0xFF}, "decode CLIENT_REGISTER request: negative map size -1 at offset 0"},
		{bs{0x7F, 0xFF, 0, 0}, "decode CLIENT_REGISTER request: map size 32767 needs at least 131068 bytes, have 2"},
		{bs{0}, "decode CLIENT_REGISTER request: need 2 bytes for int16 at offset 0, have 1"},
		{goldenClientRegister[:len(goldenClientRegister)-1], "decode CLIENT_REGISTER request: need 3 bytes for string at offset 131, have 2"},
	} {
		if _, err := DecodeClientRegisterRequest(c.body); err == nil || err.Error() != c.want {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestClientRegisterResponse(t *testing.T) {
	v := goldenClientRegisterResponseStruct
	if got := AppendClientRegisterResponse(nil, &v); !bytes.Equal(got, goldenClientRegisterResponse) {
		t.Fatalf("encoded\n got % x\nwant % x", got, goldenClientRegisterResponse)
	}
	got, err := DecodeClientRegisterResponse(goldenClientRegisterResponse)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("%+v %v", got, err)
	}
	empty := ClientRegisterResponse{Timestamp: -2, OnOfflineState: ClientOffline, ClientTypeCode: 1}
	if got, err := DecodeClientRegisterResponse(AppendClientRegisterResponse(nil, &empty)); err != nil || !reflect.DeepEqual(got, empty) {
		t.Fatalf("%+v %v", got, err)
	}
	head := goldenClientRegisterResponse[:32] // up to and including the group count
	for _, c := range []struct {
		body bs
		want string
	}{
		{cat(head[:30], bs{0x80, 0x00}), "decode CLIENT_REGISTER response: negative broker group count -32768 at offset 30"},
		{cat(head[:30], bs{0x01, 0x00}), "decode CLIENT_REGISTER response: broker group count 256 needs at least 3328 bytes, have 0"},
		{goldenClientRegisterResponse[:len(goldenClientRegisterResponse)-1], "decode CLIENT_REGISTER response: need 1 bytes for uint8 at offset 101, have 0"},
	} {
		if _, err := DecodeClientRegisterResponse(c.body); err == nil || err.Error() != c.want {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestConsumeManage(t *testing.T) {
	v := ConsumeManageRequest{Subject: "s", ConsumerGroup: "g", Code: ConsumeFromEarliest}
	if got := AppendConsumeManageRequest(nil, &v); !bytes.Equal(got, goldenConsumeManage) {
		t.Fatalf("% x", got)
	}
	if got, err := DecodeConsumeManageRequest(goldenConsumeManage); err != nil || got != v {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeConsumeManageRequest(bs{0xFF, 0xFE}); err == nil ||
		err.Error() != "decode CONSUME_MANAGE request: negative string length -2 at offset 0" {
		t.Fatalf("%v", err)
	}
}
