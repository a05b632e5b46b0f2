package delayadmin

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinSecretBytes is the shortest secret accepted: a shorter one could be
// guessed offline from one recorded request.
const MinSecretBytes = 16

// Secret is delay.admin.secret, shared by the metaserver and the delay
// servers. The zero Secret is "none": the metaserver cannot cancel and the
// delay server refuses every cancel.
// A string, not bytes, so that settings holding it stay comparable.
type Secret struct{ key string }

// NewSecret wraps key (empty: none) without checking its length.
func NewSecret(key string) Secret { return Secret{key: strings.TrimSpace(key)} }

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

// LoadSecret reads delay.admin.secret (value) or delay.admin.secret.file
// (file: what a Nomad job renders from a Nomad variable, keeping the secret
// out of the properties file). At most one may be given; surrounding
// whitespace is not part of the secret; both empty means none.
func LoadSecret(value, file string) (Secret, error) {
	value = strings.TrimSpace(value)
	if value != "" && file != "" {
		return Secret{}, errors.New("both delay.admin.secret and delay.admin.secret.file are set: keep one (the file keeps the secret out of the properties file)")
	}
	what := "delay.admin.secret"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("read delay.admin.secret.file: %w", err)
		}
		value, what = strings.TrimSpace(string(b)), "the secret in delay.admin.secret.file "+file
	}
	if value == "" {
		return Secret{}, nil
	}
	if len(value) < MinSecretBytes {
		return Secret{}, fmt.Errorf("%s is %d bytes: too short, it could be guessed from one recorded request; use at least %d random bytes, e.g. the output of `openssl rand -hex 32`",
			what, len(value), MinSecretBytes)
	}
	return Secret{key: value}, nil
}
