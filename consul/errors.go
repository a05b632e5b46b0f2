package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/hashicorp/consul/api"
)

// Error is returned by Register and by the deregister function. Its message
// says what failed, where, why in a few words, and what to do about it; the
// underlying error stays reachable through errors.Is / errors.As.
type Error struct {
	Op      string // "register" or "deregister"
	Service string // service name
	Addr    string // consul agent address as shown to the user; "" if unset
	Reason  string // short cause, e.g. "connection refused"
	Hint    string // what to check, may be empty
	Err     error  // underlying error
}

func (e *Error) Error() string {
	where := "with consul"
	if e.Op == "deregister" {
		where = "from consul"
	}
	if e.Addr != "" {
		where += " at " + e.Addr
	}
	msg := fmt.Sprintf("%s %s %s: %s", e.Op, e.Service, where, e.Reason)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

const (
	registerAddrHint = "set consul.address or " + api.HTTPAddrEnvName
	resolverAddrHint = "set the resolver's HTTP address or " + api.HTTPAddrEnvName
)

// explainedError shows a short reason while keeping the cause for errors.Is.
type explainedError struct {
	msg string
	err error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

// explainHTTP turns an error from the consul HTTP API into a short reason
// and an actionable hint. service names the service for ACL hints.
// addrHint is appended to connectivity problems ("set X or CONSUL_HTTP_ADDR").
func explainHTTP(err error, service, perm, addrHint string) (reason, hint string) {
	var statusErr api.StatusError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errNoAddress):
		return "no address configured", addrHint
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", "is the agent running? " + addrHint
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable", "is the agent reachable from this host? " + addrHint
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timed out", "is the agent reachable and responsive? " + addrHint
	case errors.Is(err, context.Canceled):
		return "canceled", ""
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve agent host %q: %s", dnsErr.Name, dnsErr.Err), addrHint
	case errors.As(err, &statusErr):
		body := statusErr.Body
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		switch statusErr.Code {
		case 401, 403:
			return fmt.Sprintf("permission denied (HTTP %d: %s)", statusErr.Code, body),
				fmt.Sprintf("set consul.token or %s to a token with %s on %q", api.HTTPTokenEnvName, perm, service)
		case 400:
			return fmt.Sprintf("rejected by the agent (HTTP 400: %s)", body),
				"check the service name, address, port and health check URL"
		default:
			return fmt.Sprintf("HTTP %d: %s", statusErr.Code, body), "check the consul agent's log"
		}
	default:
		return err.Error(), addrHint + "; check the consul agent's log"
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
