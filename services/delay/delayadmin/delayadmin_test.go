package delayadmin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	s := NewSecret("0123456789abcdef0123")
	now := time.Now()
	r, err := Sign(s, "delay1", "order", "id-1", now)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeRequest(r.Append(nil))
	if err != nil || back != r {
		t.Fatalf("round trip: %+v %v; want %+v", back, err, r)
	}
	if err := Verify(s, back, now.Add(time.Minute)); err != nil {
		t.Errorf("a fresh request: %v", err)
	}
	for name, bad := range map[string]func(Request) Request{
		"subject":   func(r Request) Request { r.Subject = "other"; return r },
		"messageId": func(r Request) Request { r.MessageID = "id-2"; return r },
		"group":     func(r Request) Request { r.Group = "delay2"; return r },
		"time":      func(r Request) Request { r.UnixMillis++; return r },
		"no mac":    func(r Request) Request { r.MAC = ""; return r },
	} {
		if err := Verify(s, bad(r), now); err == nil || !strings.Contains(err.Error(), "bad signature") {
			t.Errorf("%s altered: %v; want a bad signature", name, err)
		}
	}
	if err := Verify(NewSecret("another-secret-0123456789"), r, now); err == nil {
		t.Error("another secret verified the request")
	}
	if err := Verify(Secret{}, r, now); err == nil || !strings.Contains(err.Error(), "refuses every cancel") {
		t.Errorf("no secret: %v", err)
	}
	if err := Verify(s, r, now.Add(MaxSkew+time.Second)); err == nil || !strings.Contains(err.Error(), "clock") {
		t.Errorf("an old request: %v", err)
	}
	if _, err := Sign(Secret{}, "g", "s", "i", now); err == nil {
		t.Error("signed without a secret")
	}
}

func TestLoadSecret(t *testing.T) {
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("0123456789abcdef-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadSecret("", f); err != nil || !s.Set() || s.key != "0123456789abcdef-from-file" {
		t.Errorf("from a file: %v %v", s, err)
	}
	if _, err := LoadSecret("0123456789abcdef", f); err == nil {
		t.Error("both accepted")
	}
	if _, err := LoadSecret("short", ""); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("a short secret: %v", err)
	}
	if s, err := LoadSecret(" ", ""); err != nil || s.Set() {
		t.Errorf("empty: %v %v", s, err)
	}
	s := NewSecret("0123456789abcdef")
	if out := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(out, "0123") {
		t.Errorf("the secret is printed: %s", out)
	}
}
