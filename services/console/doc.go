// Package console is qmq-go's web console: server-rendered pages
// (html/template, one embedded CSS file, no JavaScript needed) over the
// metaserver's management API, the brokers', delay servers' and watchdogs'
// /health and /consumers, and the backup service's message API.
//
// Reads are open only when Settings.OpenReads says so; otherwise, like
// every write (reset offset, readonly, resend, force offline), they need a
// token of valid-api-tokens.properties. Writes are POSTs checked for a
// same-origin request, forward the caller's token to the metaserver, and
// are logged with the token's description and the values.
package console
