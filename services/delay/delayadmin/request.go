package delayadmin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// MaxSkew is how far a request's time may be from the delay server's clock.
const MaxSkew = 5 * time.Minute

// label starts every signed text, so that a signature made for another
// purpose with the same key can never pass as a cancel.
const label = "qmq-go CANCEL_DELAY v1"

// Request is the body of CANCEL_DELAY: group str16 | subject str16 |
// messageId str16 | unixMillis i64 | nonce str16 (hex) | mac str16 (hex).
type Request struct {
	Group      string // the delay group the request is meant for
	Subject    string
	MessageID  string
	UnixMillis int64
	Nonce      string
	MAC        string
}

// Sign builds a signed request for group at now. It fails without a secret.
func Sign(s Secret, group, subject, messageID string, now time.Time) (Request, error) {
	if !s.Set() {
		return Request{}, errors.New("no delay.admin.secret is configured")
	}
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return Request{}, fmt.Errorf("make a nonce: %w", err)
	}
	r := Request{Group: group, Subject: subject, MessageID: messageID, UnixMillis: now.UnixMilli(), Nonce: hex.EncodeToString(n)}
	r.MAC = hex.EncodeToString(r.mac(s.key))
	return r, nil
}

// Verify checks r's signature (in constant time) and its time against now.
// The errors say what is wrong for the log, never the secret or the MAC.
func Verify(s Secret, r Request, now time.Time) error {
	if !s.Set() {
		return errors.New("this delay server has no delay.admin.secret (or delay.admin.secret.file): it refuses every cancel")
	}
	got, err := hex.DecodeString(r.MAC)
	if err != nil || !hmac.Equal(got, r.mac(s.key)) {
		return errors.New("bad signature: the sender's delay.admin.secret differs from this server's, or the request was altered")
	}
	if skew := now.Sub(time.UnixMilli(r.UnixMillis)); skew > MaxSkew || skew < -MaxSkew {
		return fmt.Errorf("request time %s is %v from this server's clock (at most %v): check both clocks (NTP)",
			time.UnixMilli(r.UnixMillis).UTC().Format(time.RFC3339), skew.Round(time.Second), MaxSkew)
	}
	return nil
}

// mac is HMAC-SHA256 over the label and every field, each length-prefixed
// so that no two different requests hash the same bytes.
func (r Request) mac(key string) []byte {
	h := hmac.New(sha256.New, []byte(key))
	for _, f := range []string{label, r.Group, r.Subject, r.MessageID, r.Nonce} {
		_ = binary.Write(h, binary.BigEndian, uint32(len(f)))
		h.Write([]byte(f))
	}
	_ = binary.Write(h, binary.BigEndian, r.UnixMillis)
	return h.Sum(nil)
}

// Append appends r's encoding.
func (r Request) Append(dst []byte) []byte {
	dst = protocol.AppendString16(dst, r.Group)
	dst = protocol.AppendString16(dst, r.Subject)
	dst = protocol.AppendString16(dst, r.MessageID)
	dst = protocol.AppendInt64(dst, r.UnixMillis)
	dst = protocol.AppendString16(dst, r.Nonce)
	return protocol.AppendString16(dst, r.MAC)
}

// DecodeRequest parses a CANCEL_DELAY body.
func DecodeRequest(body []byte) (Request, error) {
	d := protocol.NewDecoder(body)
	r := Request{Group: d.String16(), Subject: d.String16(), MessageID: d.String16(), UnixMillis: d.Int64(), Nonce: d.String16(), MAC: d.String16()}
	if err := d.Err(); err != nil {
		return Request{}, fmt.Errorf("malformed CANCEL_DELAY body: %w", err)
	}
	return r, nil
}

// Answers of a successful CANCEL_DELAY (body: u8).
const (
	NotFound  uint8 = 0 // unknown, already delivered or cancelled, or being delivered
	Cancelled uint8 = 1
)
