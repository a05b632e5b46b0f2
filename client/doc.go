// Package client is the Go client of QMQ, wire-compatible with QMQ's Java
// brokers and metaservers.
//
// # Routing
//
// Producers and consumers find the metaserver from a meta.server.endpoint
// (http://host:8080/meta/address, consul://qmq-metaserver or host:port) and
// send CLIENT_REGISTER per (client type, subject, group): ONLINE the first
// time, HEARTBEAT on each refresh (every 60 s, WithRouteRefresh), and again
// at most once a second after a failure involving the route.
//
// # Producing
//
// Producer.NewMessage creates a message with a QMQ id
// (yyMMdd.HHmmss.<ip>.<pid>.<counter>; the counter is process-wide, like
// the pid), qmq_createTime, qmq_expireTime and qmq_appCode. QMQ messages
// carry only string properties; SetBody/Body use the large string "data"
// (BodyKey). Send is synchronous; SendAsync queues for background senders
// that batch per broker group. Each message gets up to 10 tries: the first
// group is random, then round robin, skipping groups whose circuit breaker
// is open (3 consecutive failures, or BROKER_READ_ONLY / BROKER_REJECT: 10
// s). MESSAGE_DUPLICATE is success, BLOCK is final, other failures move to
// the next group. Delay messages (SetDelay) are routed as DELAY_PRODUCER.
//
// # Consuming
//
// A Consumer pulls its subject and %RETRY%<subject>%<group> from every
// broker group of their routes, one long-polling goroutine per (subject,
// group). Each pulled message gets a slot in a per-(subject, broker group)
// ack queue; completed prefixes are acknowledged with range ACKs (at once
// when everything pulled is done or a batch is complete, else within the
// ack flush interval), heartbeats go out every 10 s, and every pull carries
// PullOffsetBegin/PullOffsetLast so the broker can redeliver what a
// consumer pulled but never received. A failed message is re-sent with
// qmq_times+1 to the retry subject, or to %DEAD_RETRY%<subject>%<group>
// once qmq_times would exceed the maximum (32 by default, qmq_maxRetryNum
// per message); its slot completes only after that send succeeded.
//
// Every goroutine belongs to a Producer or Consumer and ends with Close
// (or, for Run, with its context).
package client
