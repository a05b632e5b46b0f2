package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSyncAuthRoundTrip(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, SyncAuthNonceSize)
	hello := SyncAuthRequest{Step: SyncAuthHello, HasSecret: true, Group: "g1", Role: "slave", ClientNonce: nonce}
	if got, err := DecodeSyncAuthRequest(AppendSyncAuthRequest(nil, &hello)); err != nil || !reflect.DeepEqual(got, hello) {
		t.Fatalf("hello: %+v %v", got, err)
	}
	proof := SyncAuthRequest{Step: SyncAuthProve, Proof: bytes.Repeat([]byte{9}, SyncAuthProofSize)}
	if got, err := DecodeSyncAuthRequest(AppendSyncAuthRequest(nil, &proof)); err != nil || !reflect.DeepEqual(got, proof) {
		t.Fatalf("proof: %+v %v", got, err)
	}
	ch := SyncAuthChallenge{HasSecret: true, ServerNonce: nonce}
	if got, err := DecodeSyncAuthChallenge(AppendSyncAuthChallenge(nil, &ch)); err != nil || !reflect.DeepEqual(got, ch) {
		t.Fatalf("challenge: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {3}, {SyncAuthHello, 2, 0}, {SyncAuthProve, 1, 2}, AppendSyncAuthRequest(nil, &hello)[:20]} {
		if _, err := DecodeSyncAuthRequest(bad); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
	if CodeName(CodeSyncAuth, false) != "SYNC_AUTH" {
		t.Error(CodeName(CodeSyncAuth, false))
	}
}

func TestAcquireMetaSlaveAddress(t *testing.T) {
	resp := BrokerAcquireMetaResponse{GroupName: "broker-0", Role: RoleMaster, SlaveAddress: "10.0.0.2:20882", SlaveKnown: true}
	b := AppendBrokerAcquireMetaResponse(nil, &resp)
	if got, err := DecodeBrokerAcquireMetaResponse(b); err != nil || got != resp {
		t.Fatalf("%+v %v", got, err)
	}
	// A Java metaserver sends no slave address; garbage after the role is ignored.
	for _, body := range [][]byte{goldenAcquireMetaResponse, append(append([]byte(nil), goldenAcquireMetaResponse...), 0x00, 0x09, 'x')} {
		if got, err := DecodeBrokerAcquireMetaResponse(body); err != nil || got.SlaveKnown {
			t.Fatalf("%+v %v", got, err)
		}
	}
}

func FuzzDecodeSyncAuthRequest(f *testing.F) {
	f.Add(AppendSyncAuthRequest(nil, &SyncAuthRequest{Step: SyncAuthHello, Group: "g", Role: "slave", ClientNonce: make([]byte, SyncAuthNonceSize)}))
	f.Add(AppendSyncAuthRequest(nil, &SyncAuthRequest{Step: SyncAuthProve, Proof: make([]byte, SyncAuthProofSize)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeSyncAuthRequest(data)
		if err != nil {
			return
		}
		if again, err := DecodeSyncAuthRequest(AppendSyncAuthRequest(nil, &r)); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", r, again, err)
		}
	})
}

func FuzzDecodeSyncAuthChallenge(f *testing.F) {
	f.Add(AppendSyncAuthChallenge(nil, &SyncAuthChallenge{ServerNonce: make([]byte, SyncAuthNonceSize)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeSyncAuthChallenge(data)
		if err != nil {
			return
		}
		if again, err := DecodeSyncAuthChallenge(AppendSyncAuthChallenge(nil, &c)); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", c, again, err)
		}
	})
}
