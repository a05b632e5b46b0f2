package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// DefaultPort is the metaserver's HTTP port (meta.server.discover.port)
// assumed when an address names none, as QMQ's tools.sh does.
const DefaultPort = "8080"

// maxAnswer bounds what is read of an answer: a broker table of any
// realistic size fits many times over.
const maxAnswer = 64 << 20

// Client posts management actions to one metaserver. It is safe for
// concurrent use; it holds no connection of its own beyond its
// *http.Client's pool.
type Client struct {
	endpoint string // http://host:port/management
	token    string
	hc       *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send through hc (timeouts, transport,
// TLS-terminating proxies). The default is a client of its own with no
// timeout: each call's context bounds it.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// New returns a client of the metaserver at addr: its HTTP address as
// `qmq tools --metaserver` takes it, host or host:port (port 8080 when
// none), optionally with an http:// prefix. token is a key of the
// metaserver's valid-api-tokens.properties; read-only actions (ListBrokers,
// ListBrokerGroups, ListSubjectRoutes) work without one.
func New(addr, token string, opts ...Option) *Client {
	c := &Client{endpoint: ManagementURL(addr), token: token, hc: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ManagementURL turns a metaserver address (host, host:port, with or
// without http:// or https://) into the URL of its management API, the way
// QMQ's tools.sh reads --metaserver: a missing port is 8080, and the API is
// served over plain HTTP.
func ManagementURL(addr string) string {
	v := strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	v = strings.TrimSuffix(v, "/")
	if _, _, err := net.SplitHostPort(v); err != nil {
		v = net.JoinHostPort(v, DefaultPort)
	}
	return "http://" + v + "/management"
}

// Endpoint is the management URL the client posts to.
func (c *Client) Endpoint() string { return c.endpoint }

// AddressError is a metaserver address no HTTP request can be made for
// (a space or a stray % in it): nothing was sent.
type AddressError struct {
	Endpoint string
	Err      error
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("bad metaserver address %q: %v", e.Endpoint, e.Err)
}

func (e *AddressError) Unwrap() error { return e.Err }

// Post sends form (which must carry action=<name>) as it is and returns the
// metaserver's answer, trimmed, whatever it says: the action's refusal is in
// the answer, not in err. err is for what kept an answer from coming: an
// *AddressError, an unreachable metaserver, an HTTP status other than 200.
// `qmq tools` prints this answer; the typed methods decode it.
func (c *Client) Post(ctx context.Context, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &AddressError{Endpoint: c.endpoint, Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Token", c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach the metaserver at %s: %w; is `qmq metaserver` running, and is this its HTTP port (meta.server.discover.port, default 8080)?", c.endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("read answer from %s: %w", c.endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metaserver at %s answered HTTP %s: %s", c.endpoint, resp.Status, strings.TrimSpace(string(data)))
	}
	return strings.TrimSpace(string(data)), nil
}
