package console

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/consul"
)

// httpPorts says where the brokers' and delay servers' HTTP ports are for
// one page: console.broker.http.ports first (an override), then the
// http_port meta of their Consul registrations when consul.address is
// set, then console.broker.http.offset.
type httpPorts struct {
	consul map[string]int // "ip:servePort" → HTTP port, from Consul
	err    string         // why Consul could not say ("" if it did or is not set)
}

// serverHTTP is the HTTP address (/health, /metrics, /consumers,
// /subjects) of a broker or delay server row, "" when unknown.
func (src *sources) serverHTTP(b admin.Broker, ports httpPorts) string {
	key := net.JoinHostPort(b.IP, strconv.Itoa(b.ServePort))
	if p, ok := src.settings.BrokerHTTPPorts[key]; ok {
		return net.JoinHostPort(b.IP, strconv.Itoa(p))
	}
	if p, ok := ports.consul[key]; ok {
		return net.JoinHostPort(b.IP, strconv.Itoa(p))
	}
	if src.settings.BrokerHTTPOffset < 0 {
		return ""
	}
	return net.JoinHostPort(b.IP, strconv.Itoa(b.ServePort+src.settings.BrokerHTTPOffset))
}

// consulService is an instance of /v1/catalog/service/<name>.
type consulService struct {
	Address        string            `json:"Address"` // the node's
	ServiceAddress string            `json:"ServiceAddress"`
	ServicePort    int               `json:"ServicePort"`
	ServiceMeta    map[string]string `json:"ServiceMeta"`
}

// httpPorts reads the HTTP ports brokers, delay servers and backups
// registered in Consul, keyed by address and serve port as the
// metaserver's broker table has them: every service tagged qmq and broker
// or delay (whatever its consul.service.name) gives its http_port meta;
// one tagged qmq and backup registers its HTTP port as the service port and
// its broker-table port as meta broker_port. Without consul.address it
// returns nothing.
func (src *sources) httpPorts(ctx context.Context) httpPorts {
	if src.settings.Consul == "" {
		return httpPorts{}
	}
	base := "http://" + src.settings.Consul
	var services map[string][]string
	if err := src.getJSON(ctx, base+"/v1/catalog/services", &services); err != nil {
		return httpPorts{err: fmt.Sprintf("Consul at %s (HTTP ports of brokers and delay servers): %v", src.settings.Consul, err)}
	}
	var names []string
	for name, tags := range services {
		if slices.Contains(tags, "qmq") && (slices.Contains(tags, "broker") || slices.Contains(tags, "delay") || slices.Contains(tags, "backup")) {
			names = append(names, name)
		}
	}
	out := httpPorts{consul: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var insts []consulService
			err := src.getJSON(ctx, base+"/v1/catalog/service/"+url.PathEscape(name), &insts)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.err = fmt.Sprintf("Consul at %s (service %s): %v", src.settings.Consul, name, err)
				return
			}
			for _, in := range insts {
				host := in.ServiceAddress
				if host == "" {
					host = in.Address
				}
				if bp, err := strconv.Atoi(in.ServiceMeta["broker_port"]); err == nil && slices.Contains(services[name], "backup") {
					out.consul[net.JoinHostPort(host, strconv.Itoa(bp))] = in.ServicePort
					continue
				}
				p, err := strconv.Atoi(in.ServiceMeta[consul.MetaHTTPPort])
				if err != nil || p <= 0 {
					continue // registered by a version without it, or HTTP off
				}
				out.consul[net.JoinHostPort(host, strconv.Itoa(in.ServicePort))] = p
			}
		}()
	}
	wg.Wait()
	return out
}
