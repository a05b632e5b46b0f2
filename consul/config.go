package consul

import (
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// Config says how to reach the Consul agent used for registration.
type Config struct {
	// Address is the agent's HTTP address ("127.0.0.1:8500",
	// "http://consul.local:8500", "https://..."). Empty means the
	// CONSUL_HTTP_ADDR environment variable; if that is empty too, Register
	// fails rather than guessing.
	Address string
	// Token is the ACL token; empty means CONSUL_HTTP_TOKEN (if set).
	Token string
	// Logger receives registration events; nil discards them.
	Logger hclog.Logger
}

// errNoAddress is returned when neither Config.Address nor CONSUL_HTTP_ADDR is set.
var errNoAddress = errors.New("no consul address configured; set consul.address or " + api.HTTPAddrEnvName)

func (c Config) logger() hclog.Logger {
	if c.Logger == nil {
		return hclog.NewNullLogger()
	}
	return c.Logger
}

// address returns the configured agent address, or errNoAddress.
func (c Config) address() (string, error) {
	addr := strings.TrimSpace(c.Address)
	if addr == "" {
		addr = strings.TrimSpace(os.Getenv(api.HTTPAddrEnvName))
	}
	if addr == "" {
		return "", errNoAddress
	}
	return addr, nil
}

// newAPIClient builds a consul/api client for addr. The environment supplies
// TLS and token settings; token, when non-empty, overrides CONSUL_HTTP_TOKEN.
// The returned transport belongs to the client alone, so callers may close its
// idle connections when they are done.
func newAPIClient(addr, token string) (*api.Client, *http.Transport, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	if token != "" {
		cfg.Token = token
	}
	c, err := api.NewClient(cfg)
	return c, cfg.Transport, err
}

// displayAddr strips the scheme so error messages read "at 127.0.0.1:8500".
func displayAddr(addr string) string {
	for _, p := range []string{"http://", "https://"} {
		if strings.HasPrefix(addr, p) {
			return strings.TrimSuffix(addr[len(p):], "/")
		}
	}
	return addr
}
