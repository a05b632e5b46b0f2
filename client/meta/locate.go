package meta

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/consul"
)

// Locate returns the metaserver's TCP address for endpoint:
//   - "http://host:port/meta/address" (QMQ's form): GET it, as QMQ does;
//   - "consul://qmq-metaserver[?dns=host:port]": resolve the service through Consul DNS
//     (falling back to Consul's catalog), then GET /meta/address from one instance;
//   - "host:port": used as is.
func Locate(ctx context.Context, endpoint string) (string, error) {
	if service, dns, ok := consul.ParseServiceURL(endpoint); ok {
		r := &consul.Resolver{DNSAddr: dns}
		eps, err := r.Resolve(ctx, service)
		if err != nil {
			return "", fmt.Errorf("locate metaserver %s: %w", endpoint, err)
		}
		var errs []string
		for _, ep := range eps {
			addr, err := fetchMetaAddress(ctx, "http://"+net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))+"/meta/address")
			if err == nil {
				return addr, nil
			}
			errs = append(errs, err.Error())
		}
		return "", fmt.Errorf("locate metaserver %s: every instance failed: %s", endpoint, strings.Join(errs, "; "))
	}
	if strings.HasPrefix(endpoint, "http://") || strings.HasPrefix(endpoint, "https://") {
		return fetchMetaAddress(ctx, endpoint)
	}
	if _, _, err := net.SplitHostPort(endpoint); err != nil {
		return "", fmt.Errorf("meta.server.endpoint %q: want http://<metaserver>:8080/meta/address, consul://qmq-metaserver or host:port", endpoint)
	}
	return endpoint, nil
}

func fetchMetaAddress(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("meta.server.endpoint %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("get %s: %w (is the metaserver running? meta.server.endpoint must use its HTTP port, meta.server.discover.port, default 8080)", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", fmt.Errorf("get %s: %w", url, err)
	}
	addr := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get %s: HTTP %s: %s", url, resp.Status, addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("get %s answered %q, not ip:port: is meta.server.endpoint pointing at a metaserver's /meta/address?", url, addr)
	}
	return addr, nil
}

// OutboundIP is the local IP this machine uses to reach target (host:port;
// no packet is sent): what a server registers with the metaserver when no
// address is configured. "127.0.0.1" when target cannot be resolved.
func OutboundIP(target string) string {
	c, err := net.Dial("udp", target)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
