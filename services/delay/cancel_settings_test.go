package delay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/conf"
)

// TestLoadAdminSecret: delay.admin.secret.file becomes Settings.AdminSecret
// (shown only as "(set)"); a short secret, or both keys, are refused.
func TestLoadAdminSecret(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "delay-admin.secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "meta.server.endpoint=http://meta:8080/meta/address\nstore.root=/tmp/x\n"
	s, _, err := LoadSettings(writeConf(t, base+"delay.admin.secret.file="+secretFile+"\n"), conf.Lookup{Env: noEnv})
	if err != nil || !s.AdminSecret.Set() || s.AdminSecret.String() != "(set)" {
		t.Fatalf("from a file: %v %v", s.AdminSecret, err)
	}
	if s, _, err := LoadSettings(writeConf(t, base), conf.Lookup{Env: noEnv}); err != nil || s.AdminSecret.Set() {
		t.Errorf("none: %v %v", s.AdminSecret, err)
	}
	for body, want := range map[string]string{
		base + "delay.admin.secret=short\n": "too short",
		base + "delay.admin.secret=0123456789abcdef0\ndelay.admin.secret.file=" + secretFile + "\n": "keep one",
	} {
		if _, _, err := LoadSettings(writeConf(t, body), conf.Lookup{Env: noEnv}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", body, err, want)
		}
	}
}
