package protocol

import "fmt"

// CodeSyncAuth (ours; QMQ has no such request, and its codes stop at 100
// apart from ours from 1035 on) authenticates a connection to a sync port:
// the replicating peer (a broker slave) sends it as its first frames, and a
// master with sync.secret serves no other sync request on a connection that
// has not passed it. services/replication/syncauth computes and checks the
// proofs; this file holds the wire forms only.
//
// Two round trips, each a SYNC_AUTH request whose first byte is the step:
//
//	hello: step u8 = 1 | version u8 = 1 | flags u8 (bit 0: has a secret) |
//	       group str16 | role str16 | clientNonce [32]
//	  SUCCESS: version u8 | flags u8 (bit 0: has a secret) | serverNonce [32]
//	proof: step u8 = 2 | proof [32]   (only when both have a secret)
//	  SUCCESS: proof [32] (the master's, so the slave knows it too holds the secret)
//
// A refusal is BROKER_REJECT with an error body (DecodeErrorBody).
const CodeSyncAuth int16 = 1037

func init() { requestNames[CodeSyncAuth] = "SYNC_AUTH" }

// SYNC_AUTH steps, sizes and versions.
const (
	SyncAuthHello      uint8 = 1
	SyncAuthProve      uint8 = 2
	SyncAuthVersion    uint8 = 1
	SyncAuthNonceSize        = 32
	SyncAuthProofSize        = 32 // HMAC-SHA256
	syncAuthFlagSecret uint8 = 1  // b2u(true)
)

// SyncAuthRequest is a SYNC_AUTH request body: a hello (Step
// SyncAuthHello: HasSecret, Group, Role, ClientNonce) or a proof (Step
// SyncAuthProve: Proof). Byte slices alias the decoded body.
type SyncAuthRequest struct {
	Step        uint8
	HasSecret   bool
	Group       string
	Role        string
	ClientNonce []byte
	Proof       []byte
}

// AppendSyncAuthRequest appends r's wire form for r.Step.
func AppendSyncAuthRequest(dst []byte, r *SyncAuthRequest) []byte {
	dst = append(dst, r.Step)
	if r.Step == SyncAuthProve {
		return append(dst, r.Proof...)
	}
	dst = append(dst, SyncAuthVersion, b2u(r.HasSecret))
	dst = AppendString16(dst, r.Group)
	dst = AppendString16(dst, r.Role)
	return append(dst, r.ClientNonce...)
}

// DecodeSyncAuthRequest parses a SYNC_AUTH request body; nonces and proofs
// must have their fixed sizes. Trailing bytes are ignored.
func DecodeSyncAuthRequest(body []byte) (SyncAuthRequest, error) {
	d := NewDecoder(body)
	r := SyncAuthRequest{Step: d.Uint8()}
	switch {
	case d.Err() != nil:
	case r.Step == SyncAuthProve:
		r.Proof = d.Raw(SyncAuthProofSize)
	case r.Step == SyncAuthHello:
		if v := d.Uint8(); d.Err() == nil && v != SyncAuthVersion {
			d.Failf("SYNC_AUTH version %d (this side knows version %d)", v, SyncAuthVersion)
		}
		r.HasSecret = d.Uint8()&syncAuthFlagSecret != 0
		r.Group = d.String16()
		r.Role = d.String16()
		r.ClientNonce = d.Raw(SyncAuthNonceSize)
	default:
		d.Failf("unknown SYNC_AUTH step %d (1 hello, 2 proof)", r.Step)
	}
	if err := d.Err(); err != nil {
		return SyncAuthRequest{}, fmt.Errorf("SYNC_AUTH request of %d bytes: %w", len(body), err)
	}
	return r, nil
}

// SyncAuthChallenge is the SUCCESS answer to a hello.
type SyncAuthChallenge struct {
	HasSecret   bool
	ServerNonce []byte
}

// AppendSyncAuthChallenge appends c's wire form.
func AppendSyncAuthChallenge(dst []byte, c *SyncAuthChallenge) []byte {
	dst = append(dst, SyncAuthVersion, b2u(c.HasSecret))
	return append(dst, c.ServerNonce...)
}

// DecodeSyncAuthChallenge parses the answer to a hello; trailing bytes are ignored.
func DecodeSyncAuthChallenge(body []byte) (SyncAuthChallenge, error) {
	d := NewDecoder(body)
	if v := d.Uint8(); d.Err() == nil && v != SyncAuthVersion {
		d.Failf("SYNC_AUTH version %d (this side knows version %d)", v, SyncAuthVersion)
	}
	c := SyncAuthChallenge{HasSecret: d.Uint8()&syncAuthFlagSecret != 0, ServerNonce: d.Raw(SyncAuthNonceSize)}
	if err := d.Err(); err != nil {
		return SyncAuthChallenge{}, fmt.Errorf("SYNC_AUTH challenge of %d bytes: %w", len(body), err)
	}
	return c, nil
}

// DecodeSyncAuthProof parses the master's answer to a proof: its own proof.
func DecodeSyncAuthProof(body []byte) ([]byte, error) {
	d := NewDecoder(body)
	p := d.Raw(SyncAuthProofSize)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("SYNC_AUTH proof answer of %d bytes: %w", len(body), err)
	}
	return p, nil
}
