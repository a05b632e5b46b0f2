// Package consul connects qmq components to HashiCorp Consul, which replaces
// the nginx-fronted metaserver address of upstream QMQ when qmq runs on Nomad.
//
// Two halves:
//
//   - Register advertises a component (metaserver, broker, ...) in the local
//     Consul agent, with an HTTP health check on its /health endpoint, and
//     hands back a function that deregisters it on shutdown.
//
//   - Resolver turns a "consul://<service>" endpoint (see ParseServiceURL)
//     into healthy instances. It asks Consul DNS for SRV records
//     ("<service>.service.consul.") first and falls back to the HTTP health
//     API (/v1/health/service/<service>?passing) when DNS fails or is empty.
//
// Differences between the two lookup paths:
//
//   - Service metadata (Registration.Meta, e.g. "tcp_port") travels only over
//     HTTP; endpoints found through DNS have a nil Meta.
//   - With Consul's default dns_config.only_passing=false, DNS also returns
//     instances whose checks are in "warning"; the HTTP path returns passing
//     instances only. Critical instances are excluded by both.
//
// The HTTP client honours the usual CONSUL_* environment variables
// (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...) through
// github.com/hashicorp/consul/api; explicit fields win over the environment.
package consul
