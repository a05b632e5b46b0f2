package consul

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Scheme is the URL scheme of Consul service endpoints.
const Scheme = "consul"

// defaultDNSPort is used when a ?dns= value has no port.
const defaultDNSPort = "8600"

// ParseServiceURL recognizes "consul://<service>" and
// "consul://<service>?dns=host:port" (scheme case-insensitive). It returns the
// service name, the DNS server from the dns parameter ("" if absent; a bare
// host gets Consul's DNS port 8600), and ok. ok is false for anything else,
// including plain "host:port" addresses, so callers can fall through to
// treating s as a direct address. Service names are limited to ASCII letters,
// digits, '-' and '_' (what Consul DNS can serve).
func ParseServiceURL(s string) (service string, dnsAddr string, ok bool) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || !strings.EqualFold(u.Scheme, Scheme) {
		return "", "", false
	}
	if u.User != nil || u.Opaque != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", "", false
	}
	service = u.Host
	if !validServiceName(service) {
		return "", "", false
	}
	q := u.Query()
	for k := range q {
		if k != "dns" {
			return "", "", false
		}
	}
	if vs, present := q["dns"]; present {
		if len(vs) != 1 || vs[0] == "" {
			return "", "", false
		}
		dnsAddr, ok = normalizeDNSAddr(vs[0])
		if !ok {
			return "", "", false
		}
	}
	return service, dnsAddr, true
}

// normalizeDNSAddr accepts host:port, [v6]:port, a bare host or a bare IP
// (v6 with or without brackets), adding port 8600 when missing.
func normalizeDNSAddr(a string) (string, bool) {
	if _, _, err := net.SplitHostPort(a); err != nil {
		host := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
		if _, perr := netip.ParseAddr(host); perr != nil && strings.Contains(host, ":") {
			return "", false
		}
		a = net.JoinHostPort(host, defaultDNSPort)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return "", false
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", false
	}
	return a, true
}

func validServiceName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}
