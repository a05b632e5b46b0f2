package console_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/services/console"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadSettings(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		console.FileConsole: "console.port=9001\nconsole.metaserver.http=10.0.0.1:8080\nconsole.backup.http=10.0.0.2:8082, 10.0.0.3:8082\n" +
			"console.broker.http.ports=10.0.0.5:20881=8081\nconsole.watchdog.http=10.0.0.7:8083\nconsole.typo=1\n",
		console.FileTokens: "secret-token-1=alice\n",
	})
	s, report, err := console.LoadSettings(dir, conf.Lookup{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != "127.0.0.1:9001" || s.MetaHTTP != "10.0.0.1:8080" || len(s.BackupHTTP) != 2 || s.BackupHTTP[1] != "10.0.0.3:8082" ||
		s.BrokerHTTPPorts["10.0.0.5:20881"] != 8081 || s.Tokens["secret-token-1"] != "alice" || s.OpenReads || s.WatchdogHTTP[0] != "10.0.0.7:8083" {
		t.Fatalf("settings: %+v", s)
	}
	if len(report.Unknown) != 1 || report.Unknown[0].Key != "console.typo" {
		t.Fatalf("unknown keys: %+v; want console.typo reported", report.Unknown)
	}

	for name, tc := range map[string]struct{ file, tokens, want string }{
		"no token, reads closed": {"", "", "nobody could use the console"},
		"bad port map":           {"console.broker.http.ports=10.0.0.5=x\n", "t=a\n", "want ip:servePort=httpPort"},
		"placeholder token":      {"", "<token>=ops\n", "placeholder"},
		"bad backup address":     {"console.backup.http=nohost\n", "t=a\n", "not host:port"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{console.FileConsole: tc.file, console.FileTokens: tc.tokens})
			_, _, err := console.LoadSettings(dir, conf.Lookup{Env: func(string) (string, bool) { return "", false }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one saying %q", err, tc.want)
			}
		})
	}
}
