package metaserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// Dynamic settings can change while the metaserver runs (QMQ's 动态生效
// keys): Options.Dynamic holds them at start and Options.Reload re-reads
// them, from the conf directory on SIGHUP and when a file changes (see
// FileReloader).
type Dynamic struct {
	HeartbeatTimeout time.Duration     // heartbeat.timeout.ms
	MinGroupNum      int               // min.group.num
	Tokens           map[string]string // valid-api-tokens.properties: token -> description
	LogDefault       bool              // client_log_switch.properties default
	LogSubjects      map[string]bool   // client_log_switch.properties per subject
	BrokerHTTPPorts  map[string]int    // broker-http-port-map.properties: "host[/servePort]" -> http port
}

// The bounds of the dynamic settings, shared by the loader and Validate.
const (
	minHeartbeatTimeout = time.Second
	maxHeartbeatTimeout = 24 * time.Hour
	maxMinGroupNum      = 1000
)

// DefaultDynamic is the built-in dynamic configuration: QMQ's heartbeat
// timeout (30 s) and minimum of 2 groups per subject, no API token (so no
// management action that changes the cluster is allowed), no client
// logging, broker HTTP port 8080 everywhere.
func DefaultDynamic() *Dynamic {
	return &Dynamic{
		HeartbeatTimeout: 30 * time.Second,
		MinGroupNum:      2,
		Tokens:           map[string]string{},
		LogSubjects:      map[string]bool{},
		BrokerHTTPPorts:  map[string]int{},
	}
}

// Validate holds a Dynamic built in code to the ranges the loader enforces,
// and refuses placeholder tokens as the loader does (which also names the
// file and line).
func (d *Dynamic) Validate() error {
	var errs []error
	if d.HeartbeatTimeout < minHeartbeatTimeout || d.HeartbeatTimeout > maxHeartbeatTimeout {
		errs = append(errs, fmt.Errorf("heartbeat.timeout.ms=%d is out of range: want %d to %d (start from DefaultDynamic for the default, 30000)",
			d.HeartbeatTimeout.Milliseconds(), minHeartbeatTimeout.Milliseconds(), maxHeartbeatTimeout.Milliseconds()))
	}
	if d.MinGroupNum < 1 || d.MinGroupNum > maxMinGroupNum {
		errs = append(errs, fmt.Errorf("min.group.num=%d is out of range: want 1 to %d (start from DefaultDynamic for the default, 2)", d.MinGroupNum, maxMinGroupNum))
	}
	for t := range d.Tokens {
		if why := placeholderToken(t); why != "" {
			errs = append(errs, fmt.Errorf("API token %q %s: %s", t, why, tokenAdvice()))
		}
	}
	for k, p := range d.BrokerHTTPPorts {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("broker HTTP port of %q is %d: want a port from 1 to 65535", k, p))
		}
	}
	return errors.Join(errs...)
}

// ValidToken reports whether token is one of the configured API tokens, comparing in constant time.
func (d *Dynamic) ValidToken(token string) bool {
	if token == "" {
		return false
	}
	ok := 0
	for t := range d.Tokens {
		ok |= subtle.ConstantTimeCompare([]byte(t), []byte(token))
	}
	return ok == 1
}

// VerboseFor reports whether client requests for subject should be logged in detail.
func (d *Dynamic) VerboseFor(subject string) bool {
	if v, ok := d.LogSubjects[subject]; ok {
		return v
	}
	return d.LogDefault
}

// BrokerHTTPPort is the slave HTTP port for a broker row, from broker-http-port-map.properties
// ("host/servePort" wins over "host"), default 8080.
func (d *Dynamic) BrokerHTTPPort(b store.Broker) int {
	if p, ok := d.BrokerHTTPPorts[fmt.Sprintf("%s/%d", b.Hostname, b.ServePort)]; ok {
		return p
	}
	if p, ok := d.BrokerHTTPPorts[b.Hostname]; ok {
		return p
	}
	return 8080
}

// minTokenLen is the shortest API token accepted.
const minTokenLen = 16

// tokenAdvice says how to make a real token.
func tokenAdvice() string {
	return fmt.Sprintf("put a random token of at least %d characters there, e.g. head -c 48 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9' | head -c 64", minTokenLen)
}

// placeholderToken says why t is not a real token, or "": a token that
// looks like a placeholder copied from a guide ("<token 1>", "changeme",
// "your-token") or is too short to be secret lets anyone change the cluster.
func placeholderToken(t string) string {
	lt := strings.ToLower(t)
	switch {
	case strings.ContainsAny(t, "<>"):
		return "looks like a placeholder (it has < or >)"
	case strings.Contains(lt, "changeme") || strings.Contains(lt, "change-me") || strings.Contains(lt, "your-token") || strings.Contains(lt, "your_token"):
		return "looks like a placeholder"
	case strings.IndexFunc(t, unicode.IsSpace) >= 0:
		return "has whitespace (a placeholder, or a line the properties syntax split elsewhere than meant)"
	case len(t) < minTokenLen:
		return fmt.Sprintf("is shorter than %d characters", minTokenLen)
	}
	return ""
}
