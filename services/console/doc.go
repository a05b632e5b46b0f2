// Package console is qmq-go's web console: server-rendered pages
// (html/template, one embedded CSS file, no JavaScript needed) over the
// metaserver's management API, the brokers', delay servers' and watchdogs'
// /health and /consumers, the delay servers' /subjects (pending delay
// messages per subject), and the backup service's message API. The
// brokers' and delay servers' HTTP ports come from console.broker.http.ports,
// else from their Consul registrations (meta http_port), else from an
// offset to their serve port.
//
// Reads are open only when Settings.OpenReads says so; otherwise, like
// every write (reset offset, readonly, resend, force offline), they need a
// token of valid-api-tokens.properties. Writes are POSTs checked for a
// same-origin request, forward the caller's token to the metaserver, and
// are logged with the token's description and the values.
package console
