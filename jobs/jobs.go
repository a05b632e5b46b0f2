package jobs

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// Spec is one embedded job specification.
type Spec struct {
	File string // the file name under jobs/
	HCL  string // its contents
}

var (
	//go:embed qmq-metaserver.nomad.hcl
	metaserverHCL string
	//go:embed qmq-broker.nomad.hcl
	brokerHCL string
	//go:embed qmq-watchdog.nomad.hcl
	watchdogHCL string
	//go:embed qmq-delay.nomad.hcl
	delayHCL string
	//go:embed qmq-backup.nomad.hcl
	backupHCL string
	//go:embed qmq-console.nomad.hcl
	consoleHCL string
)

// The job specifications of this directory.
var (
	Metaserver = Spec{File: "qmq-metaserver.nomad.hcl", HCL: metaserverHCL}
	Broker     = Spec{File: "qmq-broker.nomad.hcl", HCL: brokerHCL}
	Watchdog   = Spec{File: "qmq-watchdog.nomad.hcl", HCL: watchdogHCL}
	Delay      = Spec{File: "qmq-delay.nomad.hcl", HCL: delayHCL}
	Backup     = Spec{File: "qmq-backup.nomad.hcl", HCL: backupHCL}
	Console    = Spec{File: "qmq-console.nomad.hcl", HCL: consoleHCL}
)

// Specs lists every embedded specification.
func Specs() []Spec { return []Spec{Metaserver, Broker, Watchdog, Delay, Backup, Console} }

// Vars are values for a spec's variables, what `nomad job run -var
// name=value` gives: strings, bools, integers, []string and
// map[string]string.
type Vars map[string]any

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// VarFile renders vars in the syntax of a variables file (-var-file), the
// form /v1/jobs/parse takes them in.
func (v Vars) VarFile() (string, error) {
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if !identifier.MatchString(name) {
			return "", fmt.Errorf("variable name %q is not an HCL identifier", name)
		}
		lit, err := hclLiteral(v[name])
		if err != nil {
			return "", fmt.Errorf("variable %s: %w", name, err)
		}
		fmt.Fprintf(&b, "%s = %s\n", name, lit)
	}
	return b.String(), nil
}

func hclLiteral(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return hclString(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = hclString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = hclString(k) + " = " + hclString(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}", nil
	}
	return "", fmt.Errorf("value %v of type %T: want a string, bool, int, []string or map[string]string", v, v)
}

// hclString quotes s as an HCL string literal: no escape sequences beyond
// HCL's, and "${" and "%{" doubled so that they are not templates.
func hclString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		case (r == '$' || r == '%') && strings.HasPrefix(s[i+1:], "{"):
			b.WriteRune(r)
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Parse turns the spec into a job through the agent's /v1/jobs/parse with
// vars, as `nomad job run` does before registering. Errors in the spec or
// the variables come back with the agent's explanation.
func (s Spec) Parse(ctx context.Context, c *api.Client, vars Vars) (*api.Job, error) {
	varFile, err := vars.VarFile()
	if err != nil {
		return nil, fmt.Errorf("jobs/%s: %w", s.File, err)
	}
	var job api.Job
	req := &api.JobsParseRequest{JobHCL: s.HCL, Variables: varFile, Canonicalize: true}
	if _, err := c.Raw().Write("/v1/jobs/parse", req, &job, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("parse jobs/%s with variables %s: %w", s.File, redact(varFile), err)
	}
	return &job, nil
}

// Run parses the spec with vars and registers the job, as `nomad job run
// -var …` does. The answer holds the ID of the evaluation that places the
// job and the agent's warnings, if any.
func (s Spec) Run(ctx context.Context, c *api.Client, vars Vars) (*api.Job, *api.JobRegisterResponse, error) {
	job, err := s.Parse(ctx, c, vars)
	if err != nil {
		return nil, nil, err
	}
	resp, _, err := c.Jobs().Register(job, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("register job %s (jobs/%s): %w", deref(job.ID), s.File, err)
	}
	return job, resp, nil
}

// redact hides token and password values in a variables file quoted in an
// error.
func redact(varFile string) string {
	var out []string
	for _, l := range strings.Split(varFile, "\n") {
		name, _, ok := strings.Cut(l, " = ")
		if ok && (strings.Contains(name, "token") || strings.Contains(name, "password")) {
			l = name + ` = "<redacted>"`
		}
		if l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
