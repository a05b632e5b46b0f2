package metaserver

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// seedStep is one command of QMQ's install guide and, when the guide shows it, its exact output.
type seedStep struct {
	args []string
	want string
}

func loadSeedSteps(t *testing.T) []seedStep {
	t.Helper()
	f, err := os.Open("testdata/seed_001_registration.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []seedStep
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "qmq tools "):
			steps = append(steps, seedStep{args: shellWords(strings.TrimPrefix(line, "qmq tools "))})
		case strings.HasPrefix(line, "{") && len(steps) > 0:
			steps[len(steps)-1].want = line
		}
	}
	if len(steps) < 10 {
		t.Fatalf("only %d seed steps parsed", len(steps))
	}
	return steps
}

// shellWords splits like a POSIX shell for the guide's lines: spaces separate, single quotes group.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote, have = !inQuote, true
		case r == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// runSeedSteps pastes the guide's commands, pointed at h, and compares the output byte for byte.
func runSeedSteps(t *testing.T, h *harness) {
	for _, st := range loadSeedSteps(t) {
		var args []string
		for _, a := range st.args {
			if !strings.HasPrefix(a, "--metaserver=") {
				args = append(args, a)
			}
		}
		out, code := h.tools(args...)
		if code != 0 {
			t.Fatalf("qmq tools %v: exit %d, output %s", st.args, code, out)
		}
		if st.want != "" && out != st.want {
			t.Fatalf("qmq tools %v:\n got  %s\n want %s", st.args, out, st.want)
		}
	}
}

func TestSeedRegistrationSQLite(t *testing.T) {
	h := startServer(t, nil)
	runSeedSteps(t, h)
}

func TestSeedRegistrationMySQL(t *testing.T) {
	db, addr := newMySQLDatabase(t)
	h := startServer(t, useMySQL(addr, db))
	runSeedSteps(t, h)
}

func TestWrongTokenIsRefused(t *testing.T) {
	h := startServer(t, nil)
	out, code := h.tools("AddBroker", "--token=not-a-token", "--brokerGroup=g1", "--role=0", "--hostname=h1", "--ip=10.0.0.1", "--servePort=20881", "--syncPort=20882")
	if code == 0 {
		t.Fatalf("wrong token: exit 0, output %s", out)
	}
	if !strings.HasPrefix(out, `{"status":-1,"message":"没有提供合法的 Api Token`) || !strings.Contains(out, "valid-api-tokens.properties") {
		t.Fatalf("wrong token output: %s", out)
	}
	if out, _ := h.tools("ListBrokers"); out != `{"status":0,"message":"","data":[]}` {
		t.Fatalf("refused AddBroker must not add a row: %s", out)
	}
}
