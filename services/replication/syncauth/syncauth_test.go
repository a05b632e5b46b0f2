package syncauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/protocol"
)

var key = NewSecret([]byte("0123456789abcdef0123"))

// pipe runs the client against srv in memory, as the master's handler would.
func pipe(srv *Server) Call {
	var hs *Handshake
	return func(_ context.Context, body []byte) (protocol.Frame, error) {
		r, err := protocol.DecodeSyncAuthRequest(body)
		if err != nil {
			return protocol.Frame{}, err
		}
		fail := func(err error) (protocol.Frame, error) {
			return protocol.Frame{Header: protocol.Header{Code: protocol.CodeBrokerReject}, Body: protocol.AppendErrorBody(nil, err.Error())}, nil
		}
		if r.Step == protocol.SyncAuthHello {
			var ch protocol.SyncAuthChallenge
			if hs, ch, err = srv.Hello(&r); err != nil {
				return fail(err)
			}
			return protocol.Frame{Body: protocol.AppendSyncAuthChallenge(nil, &ch)}, nil
		}
		p, err := hs.Prove(r.Proof)
		if err != nil {
			return fail(err)
		}
		return protocol.Frame{Body: p}, nil
	}
}

func TestHandshake(t *testing.T) {
	srv := &Server{Secret: key, Group: "g1", Roles: []string{RoleSlave}}
	ctx := context.Background()
	if err := (&Client{Secret: key, Group: "g1", Role: RoleSlave}).Authenticate(ctx, pipe(srv)); err != nil {
		t.Fatalf("same secret: %v", err)
	}
	for name, tc := range map[string]struct {
		c    Client
		want string
	}{
		"other group":  {Client{Secret: key, Group: "g2", Role: RoleSlave}, "serves group g1"},
		"other role":   {Client{Secret: key, Group: "g1", Role: "backup"}, "not to a \"backup\""},
		"other secret": {Client{Secret: NewSecret([]byte("fedcba9876543210fedc")), Group: "g1", Role: RoleSlave}, "secrets differ"},
		"no secret":    {Client{Group: "g1", Role: RoleSlave}, "secrets differ"},
	} {
		var ref *Refusal
		if err := tc.c.Authenticate(ctx, pipe(srv)); !errors.As(err, &ref) || !strings.Contains(ref.Msg, tc.want) {
			t.Errorf("%s: %v; want a refusal with %q", name, err, tc.want)
		}
	}
	// A master that answers for another secret is caught by the slave.
	impostor := &Server{Secret: NewSecret([]byte("fedcba9876543210fedc")), Group: "g1", Roles: []string{RoleSlave}}
	call := pipe(impostor)
	forged := func(ctx context.Context, body []byte) (protocol.Frame, error) {
		f, err := call(ctx, body)
		if body[0] == protocol.SyncAuthProve { // the impostor "accepts" any proof
			return protocol.Frame{Body: make([]byte, protocol.SyncAuthProofSize)}, nil
		}
		return f, err
	}
	if err := (&Client{Secret: key, Group: "g1", Role: RoleSlave}).Authenticate(ctx, forged); err == nil || !strings.Contains(err.Error(), "master's proof does not match") {
		t.Errorf("impostor master: %v", err)
	}
	// A handshake's nonce is good for one proof only.
	h, _, err := srv.Hello(&protocol.SyncAuthRequest{Step: protocol.SyncAuthHello, HasSecret: true, Group: "g1", Role: RoleSlave, ClientNonce: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	good := mac(key.key, "client", h.serverNonce, h.clientNonce, "g1", RoleSlave)
	if _, err := h.Prove(make([]byte, 32)); err == nil {
		t.Fatal("a wrong proof passed")
	}
	if _, err := h.Prove(good); err == nil {
		t.Fatal("a second proof on one handshake passed")
	}
	// No secret anywhere: the hello is enough.
	if err := (&Client{Group: "g1", Role: RoleSlave}).Authenticate(ctx, pipe(&Server{Group: "g1", Roles: []string{RoleSlave}})); err != nil {
		t.Fatalf("no secrets: %v", err)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	os.WriteFile(f, []byte("  0123456789abcdef\n"), 0o600)
	if s, err := LoadSecret("", f); err != nil || string(s.key) != "0123456789abcdef" {
		t.Fatalf("%q %v", s.key, err)
	}
	os.WriteFile(f, []byte("\n"), 0o600)
	if s, err := LoadSecret("", f); err != nil || s.Set() {
		t.Fatalf("empty file: %v %v", s, err)
	}
	if _, err := LoadSecret("short", ""); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short: %v", err)
	}
	if s := NewSecret([]byte("0123456789abcdef")); s.String() != "(set)" || strings.Contains(s.GoString(), "0123") {
		t.Fatal("a Secret prints its key")
	}
}
