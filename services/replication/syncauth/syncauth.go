package syncauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/qmq-go/qmq/protocol"
)

// Roles a client authenticates as (part of the MAC).
const (
	RoleSlave = "slave" // a broker slave copying its master
	// RoleBackup is a reader: the backup service copying a group's logs to
	// index them. Its connections may read, never stand for the slave.
	RoleBackup = "backup"
)

// MinSecretBytes is the shortest secret accepted: shorter ones could be
// guessed offline from one recorded handshake.
const MinSecretBytes = 16

// Secret is a group's shared sync key. The zero Secret is "none".
type Secret struct{ key []byte }

// NewSecret wraps key (empty: none); see LoadSecret for the length rule.
func NewSecret(key []byte) Secret { return Secret{key: append([]byte(nil), key...)} }

// Set reports whether there is a secret.
func (s Secret) Set() bool { return len(s.key) > 0 }

// String never shows the key, so that a Secret in a log line or a %+v of
// settings does not leak it.
func (s Secret) String() string {
	if s.Set() {
		return "(set)"
	}
	return "(none)"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// LoadSecret reads the secret of sync.secret (value) or sync.secret.file
// (file, a path: what a Nomad job renders from a Nomad variable). At most
// one may be given. Surrounding whitespace is not part of the secret (a
// file usually ends with a newline). An empty or whitespace-only file means
// no secret, like an empty sync.secret: the caller warns that the sync port
// is open. A secret shorter than MinSecretBytes is an error.
func LoadSecret(value, file string) (Secret, error) {
	value = strings.TrimSpace(value)
	if value != "" && file != "" {
		return Secret{}, errors.New("both sync.secret and sync.secret.file are set: keep one (sync.secret.file keeps the secret out of broker.properties)")
	}
	what := "sync.secret"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("read sync.secret.file: %w", err)
		}
		value, what = strings.TrimSpace(string(b)), "the secret in sync.secret.file "+file
	}
	if value == "" {
		return Secret{}, nil
	}
	if len(value) < MinSecretBytes {
		return Secret{}, fmt.Errorf("%s is %d bytes: too short, it could be guessed from one recorded sync handshake; use at least %d random bytes, e.g. the output of `openssl rand -hex 32`",
			what, len(value), MinSecretBytes)
	}
	return Secret{key: []byte(value)}, nil
}

// mac is HMAC-SHA256 over the handshake: who proves ("client" or
// "server"), both nonces, group and role, each length-prefixed so that no
// two different handshakes hash the same bytes.
func mac(key []byte, label string, serverNonce, clientNonce []byte, group, role string) []byte {
	h := hmac.New(sha256.New, key)
	for _, part := range [][]byte{[]byte("qmq-go sync auth v1"), []byte(label), serverNonce, clientNonce, []byte(group), []byte(role)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

func nonce() ([]byte, error) {
	b := make([]byte, protocol.SyncAuthNonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("sync auth: no random nonce: %w", err)
	}
	return b, nil
}

// Refusal is a handshake refused by either side: Msg is for humans, the same
// on both sides (the server sends it to the client).
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{Msg: fmt.Sprintf(format, args...)}
}

func differ(group, detail string) *Refusal {
	return refuse("sync auth failed: secrets differ (%s); set the same sync.secret on master and slave of group %s", detail, group)
}

// Server is the sync port's side of the handshake.
type Server struct {
	Secret Secret
	// Group is the server's broker group; a hello naming another is refused
	// ("" accepts any, for tests).
	Group string
	// Roles are the roles the server replicates to (e.g. RoleSlave).
	Roles []string
}

// Handshake is one connection's handshake on the server, between its hello
// and its proof. It is used once.
type Handshake struct {
	srv                      *Server
	serverNonce, clientNonce []byte
	group, role              string
	done                     bool
	used                     bool
}

// Hello checks a client's hello and returns the challenge to answer it
// with. When neither side has a secret the handshake is complete at once
// (Done); otherwise the client's proof must follow (Prove). A refusal is a
// *Refusal; other errors (no randomness) are the server's.
func (s *Server) Hello(r *protocol.SyncAuthRequest) (*Handshake, protocol.SyncAuthChallenge, error) {
	group := r.Group
	if s.Group != "" && r.Group != s.Group {
		return nil, protocol.SyncAuthChallenge{}, refuse("sync auth failed: this sync port serves group %s, the %s says it belongs to group %s: check the broker table of the metaserver (qmq tools ListBrokers)",
			s.Group, r.Role, r.Group)
	}
	if s.Group != "" {
		group = s.Group
	}
	if !s.serves(r.Role) {
		return nil, protocol.SyncAuthChallenge{}, refuse("sync auth failed: this sync port of group %s replicates to %s, not to a %q", group, strings.Join(s.Roles, ", "), r.Role)
	}
	switch {
	case s.Secret.Set() && !r.HasSecret:
		return nil, protocol.SyncAuthChallenge{}, differ(group, fmt.Sprintf("the master of group %s has sync.secret, the %s has none", group, r.Role))
	case !s.Secret.Set() && r.HasSecret:
		return nil, protocol.SyncAuthChallenge{}, differ(group, fmt.Sprintf("the %s has sync.secret, the master of group %s has none", r.Role, group))
	}
	sn, err := nonce()
	if err != nil {
		return nil, protocol.SyncAuthChallenge{}, err
	}
	h := &Handshake{srv: s, serverNonce: sn, clientNonce: append([]byte(nil), r.ClientNonce...), group: group, role: r.Role, done: !s.Secret.Set()}
	return h, protocol.SyncAuthChallenge{HasSecret: s.Secret.Set(), ServerNonce: sn}, nil
}

func (s *Server) serves(role string) bool {
	for _, r := range s.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Done reports whether the handshake succeeded without a proof (no secret
// on either side).
func (h *Handshake) Done() bool { return h.done }

// Role is the client's role as it said in its hello.
func (h *Handshake) Role() string { return h.role }

// Prove checks the client's proof against this handshake's nonces and
// returns the server's proof to answer with. Only the first call can
// succeed: a handshake's nonce is good for one proof.
func (h *Handshake) Prove(proof []byte) ([]byte, error) {
	if h.used || h.done {
		return nil, refuse("sync auth failed: this connection already used its challenge; reconnect and send a new hello")
	}
	h.used = true
	want := mac(h.srv.Secret.key, "client", h.serverNonce, h.clientNonce, h.group, h.role)
	if !hmac.Equal(proof, want) {
		return nil, differ(h.group, fmt.Sprintf("the %s's proof does not match the master's sync.secret; or it is not the group's %s", h.role, h.role))
	}
	h.done = true
	return mac(h.srv.Secret.key, "server", h.serverNonce, h.clientNonce, h.group, h.role), nil
}

// Call sends one SYNC_AUTH request body and returns the answer.
type Call func(ctx context.Context, body []byte) (protocol.Frame, error)

// ErrNotSupported is returned by Client.Authenticate when the server does
// not know SYNC_AUTH (an older qmq-go master) and the client has no secret:
// the caller may go on unauthenticated.
var ErrNotSupported = errors.New("the sync port does not know SYNC_AUTH")

// Client is the replicating peer's side of the handshake.
type Client struct {
	Secret Secret
	Group  string // the client's broker group
	Role   string // e.g. RoleSlave
}

// Authenticate runs the handshake over call (one connection). A refusal,
// by the server or by this side, is a *Refusal; errors of call are
// returned as they are.
func (c *Client) Authenticate(ctx context.Context, call Call) error {
	cn, err := nonce()
	if err != nil {
		return err
	}
	resp, err := call(ctx, protocol.AppendSyncAuthRequest(nil, &protocol.SyncAuthRequest{
		Step: protocol.SyncAuthHello, HasSecret: c.Secret.Set(), Group: c.Group, Role: c.Role, ClientNonce: cn}))
	if err != nil {
		return err
	}
	switch resp.Header.Code {
	case protocol.CodeSuccess:
	case protocol.CodeUnknownCode:
		if !c.Secret.Set() {
			return ErrNotSupported
		}
		return refuse("sync auth failed: the master does not know SYNC_AUTH (a qmq-go master older than this %s?), so it cannot check sync.secret; upgrade it, or remove sync.secret from this %s of group %s",
			c.Role, c.Role, c.Group)
	default:
		return refuse("%s", protocol.DecodeErrorBody(resp.Body))
	}
	ch, err := protocol.DecodeSyncAuthChallenge(resp.Body)
	if err != nil {
		return refuse("sync auth failed: malformed answer to the hello: %v", err)
	}
	switch {
	case ch.HasSecret != c.Secret.Set() && c.Secret.Set():
		return differ(c.Group, fmt.Sprintf("this %s has sync.secret, the master has none", c.Role))
	case ch.HasSecret != c.Secret.Set():
		return differ(c.Group, fmt.Sprintf("the master has sync.secret, this %s has none", c.Role))
	case !c.Secret.Set():
		return nil
	}
	proof := mac(c.Secret.key, "client", ch.ServerNonce, cn, c.Group, c.Role)
	resp, err = call(ctx, protocol.AppendSyncAuthRequest(nil, &protocol.SyncAuthRequest{Step: protocol.SyncAuthProve, Proof: proof}))
	if err != nil {
		return err
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return refuse("%s", protocol.DecodeErrorBody(resp.Body))
	}
	theirs, err := protocol.DecodeSyncAuthProof(resp.Body)
	if err != nil {
		return refuse("sync auth failed: malformed answer to the proof: %v", err)
	}
	if !hmac.Equal(theirs, mac(c.Secret.key, "server", ch.ServerNonce, cn, c.Group, c.Role)) {
		return refuse("sync auth failed: the master's proof does not match this %s's sync.secret: the sync port is not the master of group %s, or it answers for another group",
			c.Role, c.Group)
	}
	return nil
}
