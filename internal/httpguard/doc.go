// Package httpguard puts limits on the HTTP servers of the metaserver and
// the broker, so that no client can hold a connection, a goroutine or
// memory without bound: read, write and idle timeouts, a header and a body
// limit, a bound on parameter lengths, and a connection limit that refuses
// (with 503, a log line and a counter) rather than queues.
package httpguard
