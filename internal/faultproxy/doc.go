// Package faultproxy is a TCP proxy for fault tests: it forwards a listening
// port to a target and can swallow traffic (a partition that leaves
// connections open, as a cut cable does), heal, and add latency. The broker's
// and the delay server's failover tests put it in front of the metaserver and
// of a master's sync.port. For tests only.
package faultproxy
