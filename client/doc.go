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
// The messages of one pull share their memory (one copy of the response,
// one array of messages): keeping a message after handling it keeps its
// whole batch.
//
// # Forced offline
//
// The metaserver can force a consumer offline (QMQ's client_offline_state,
// set with GET /onoffline?operation=update&clientId=…&subject=…&consumerGroup=…&state=1).
// Every CLIENT_REGISTER answer for the consumer's subject carries the
// state; as QMQ's MetaInfoService, answers older than the newest one seen
// are ignored. While offline the consumer stops pulling its subject and
// retry subject (acks and heartbeats go on) and Consumer.Online reports
// false; it resumes when an answer says online. The state is read at
// route refreshes (WithRouteRefresh), so a change takes up to that long.
//
// # Data center and sub-environments
//
// WithLDC sends the client's logical data center as clientLDC in
// CLIENT_REGISTER (the metaserver records it as the subscription's room).
//
// WithEnv(env, subEnv) is QMQ's EnvProvider for every subject. A producer
// stamps qmq_env and qmq_subEnv on the messages NewMessage creates. A
// consumer renames its group <group>_<env>_<subEnv> (a broadcast consumer
// without a group: <clientId>_<env>_<subEnv>) everywhere: metaserver,
// pulls, acks, retry and dead-letter subjects, qmq_consumerGroupName. Its
// pulls of the subject carry a SUB_ENV_ISOLATION filter (env, subEnv), so
// a broker with sub_env_isolation_filter.enable delivers only the messages
// whose qmq_env/qmq_subEnv match the broker's rule for
// (subject, <group>_<env>_<subEnv>); without a rule, none. Two
// differences from QMQ's Java client: pulls of the retry subject carry no
// such filter (Java sends it there too, and since no rule names a %RETRY%
// subject the broker drops every retry of such a consumer); and Java
// applies its EnvProvider to listener consumers only, this client to Pull
// and Run alike.
//
// # Metrics
//
// With WithRegisterer, producers and consumers register Prometheus
// metrics (nothing is registered otherwise, and never globally). Names
// follow QMQ's client metrics, mapped to Prometheus conventions: a
// counter's _count suffix becomes _total (_total is appended otherwise), a
// meter (…_qps) becomes a _total counter, and a timer (…_time, …_timer)
// becomes a histogram in seconds named …_seconds; camelCase parts are
// snake_cased. Consumer series have the labels subject and group (the
// group as sent, see WithEnv); pull and ack series use the pulled
// subject, so the retry subject has series of its own.
//
//	QMQ                                    Prometheus
//	qmq_client_send_count                  qmq_client_send_total: messages given to Send/SendAsync
//	qmq_client_send_ok_count               qmq_client_send_ok_total: stored (duplicates included)
//	qmq_client_send_ok_qps                 (use rate(qmq_client_send_ok_total))
//	qmq_client_send_error_count            qmq_client_send_error_total: failed tries
//	qmq_client_send_fail_count             qmq_client_send_fail_total: failed for good (tries used up, BLOCK, queue full)
//	qmq_client_resend_count                qmq_client_resend_total: tries after the first
//	qmq_client_enter_queue_fail            qmq_client_enter_queue_fail_total: SendAsync refused, queue full
//	qmq_client_producer_send_message_time  qmq_client_producer_send_message_seconds{subject}: Send/SendAsync to final outcome
//	qmq_client_producer_send_broker_time   qmq_client_producer_send_broker_seconds: one SEND_MESSAGE round trip
//	qmq_pull_count                         qmq_pull_total: messages pulled
//	qmq_pull_error                         qmq_pull_error_total: failed pull requests
//	qmq_pull_timer                         qmq_pull_seconds: pull round trip, long poll included
//	qmq_pull_ack_sendnum_qps               qmq_pull_ack_sendnum_total: messages acknowledged
//	qmq_pull_ack_error                     qmq_pull_ack_error_total: failed ACK requests
//	qmq_pull_ack_timer                     qmq_pull_ack_seconds: ACK round trip
//	qmq_pull_handle_timer                  qmq_pull_handle_seconds: Run handler time
//	qmq_pull_handleFail_count              qmq_pull_handle_fail_total: Run handler errors and panics
//	qmq_pull_createToHandle_timer          qmq_pull_create_to_handle_seconds: message creation to Run handler start
//	qmq_pull_send_msg_error                qmq_pull_send_msg_error_total: failed sends to the retry/dead-letter subject
//	qmq_deadqueue_send_count               qmq_deadqueue_send_total: messages sent to the dead-letter subject
//	(none)                                 qmq_client_consumer_online: 1 pulling, 0 forced offline
//
// QMQ's producer counters are process-wide, so they have no labels here
// either; producers sharing a registerer share them. Consumers of one
// registerer share series by (subject, group).
//
// Every goroutine belongs to a Producer or Consumer and ends with Close
// (or, for Run, with its context).
package client
