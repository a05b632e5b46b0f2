// Package broker is the real-time broker (`qmq broker`): it stores what
// producers send and serves consumer groups from a shared cursor per
// (subject, group), following QMQ's design (QMQ reference §1.3,
// §2.4–§2.8; docs/architecture.md). It speaks QMQ's TCP protocol, so Java clients work with it.
//
// # Lifecycle
//
// New reads broker.properties, opens the store and binds broker.port. Run
// acquires the broker's group and role from the metaserver (retrying every
// meta.retry.interval.ms, 5 s, less up to half of it at random so that
// brokers restarted together spread out, with one log line per failure that
// carries the metaserver's explanation), then runs as the role it is given:
//
//   - master (role 0): serves sync.port for its slave (services/replication),
//     registers ONLINE, heartbeats every 10 s (locating the metaserver again
//     after a failure), and serves clients until its context ends; then it
//     sends OFFLINE (3 tries), stops serving and closes the store. Until ONLINE
//     has been acknowledged SEND_MESSAGE answers every message
//     BROKER_READ_ONLY.
//   - slave (role 1): copies the master's message and action logs from the
//     master's sync address (the metaserver's answer names it), whatever the
//     start order: a slave started before its master waits for it (QMQ's slave
//     cannot). It registers nowhere but Consul and refuses clients (PULL, ACK,
//     CONSUME_MANAGE answer an error naming the role; SEND answers
//     BROKER_READ_ONLY). Its own sync.port serves the group's backup as a
//     reader only (replication.MasterConfig.ReadersOnly; docs/backup-follower.md).
//
// Other roles stop the broker with an explanation.
//
// # Replication (replica.go)
//
// With wait.slave.wrote=true a master answers a send only once the slave has
// written it (messages without the unreliable flag, as QMQ); at most
// receive.queue.size messages wait at once. What the slave does not confirm
// within wait.slave.wrote.timeout.ms (ours; QMQ waits for the producer's
// timeout) is answered BROKER_BUSY with the reason: it is stored, and the
// producer sends it again, to another group if it has one (at-least-once).
// With slave.message.lag.mark_readonly=true as well, a slave more than
// slave.message.lag.time.max.seconds behind (or absent) turns the master's
// heartbeats read-only (state R), and the metaserver stops giving the group
// to producers until the slave has caught up.
//
// # Failover (failover.go, ours)
//
// A master takes its group's lease at the metaserver (BROKER_LEASE, table
// broker_epoch) before going ONLINE and renews it every third of
// failover.lease.ttl.ms; each term records where the new master's logs ended
// when it took over, and store.root/failover-epoch.json the last term this
// store knew. With failover.enable=true (needs wait.slave.wrote=true) a master
// that cannot renew refuses sends (BROKER_READ_ONLY) before the lease can
// expire, and a slave whose master has been silent for
// failover.master.timeout.ms (and that has caught up in this run) asks to be
// promoted; the metaserver grants it only on an expired lease of a master that
// ran with wait.slave.wrote, swapping the roles. The promoted slave stops
// copying, serves sync.port and registers ONLINE without a restart. A master
// whose lease or heartbeat is refused because another broker holds the group,
// and a slave whose store belongs to an older term and goes past the next
// term's takeover point, restart in-process (Run): the logs are cut at the
// takeover point (storage.TruncateLogs) and the broker copies the new master.
// The metaserver's refusals of BROKER_LEASE carry a reason code
// (protocol.LeaseRefused*): a master waiting at start-up retries only while
// the lease is held by another broker and has not expired.
//
// The lease is a masterLease (lease_consul.go, services/lease, shared with
// the delay server): the metaserver's (lease.Meta)
// or, when consul.address is set with failover.enable (and
// failover.consul.lease, default true), a Consul session lock on
// <failover.consul.key.prefix, default qmq/broker/><group>/master
// (lease.Consul, consul.Lock): session TTL
// failover.consul.session.ttl.ms (at least 10 s), behavior release,
// lock-delay failover.consul.lock.delay.ms, and (ours, unless
// failover.consul.check.ttl.ms is 0) a TTL health check of
// failover.consul.check.ttl.ms (3 s) that the session depends on, so that a
// dead master's lock is free 3 s after its last renewal instead of 10–20 s.
// The master renews (passes the check, renews the session) every third of
// the lease TTL (the check's, else the session's) and refuses sends 90% of it
// after its last successful renewal was sent (Consul invalidates no sooner,
// then adds the lock-delay). Each claim is also sent to the metaserver as
// BROKER_LEASE with protocol.LeaseConsul, which records the term without
// checking the metaserver's expiry (and turns a broker whose role was
// swapped away into a rejoin). A slave takes over only after acquiring the
// lock; its LeasePromote|LeaseConsul keeps the role and wait.slave.wrote
// checks, swaps the roles and records the takeover offsets; refused, it
// releases the lock.
//
// With consul.address (or CONSUL_HTTP_ADDR) set (ours), the online broker
// also registers in Consul as consul.service.name (qmq-broker) at its
// registered address, tagged group:<group> and role:<role>, with a TCP check
// on broker.port (the broker serves no HTTP); a failed registration is
// logged once and retried every heartbeat, and the service is deregistered
// first thing at shutdown (consul.go).
//
// # Requests
//
//   - SEND_MESSAGE: the batch is decoded (CRC checked), subjects that are
//     not legal names (package protocol/names: 1..100 of A-Z a-z 0-9 . _ -,
//     or a retry/dead-letter subject built from such names) are answered
//     BLOCK with the reason as remark — Java answers SUBJECT_NOT_ASSIGNED,
//     which its producer retries on every group up to 10 times, although
//     the name will never become legal; BLOCK is final for Java and Go
//     producers alike. Messages over max.message.size are answered BLOCK
//     too, and the rest are appended as one store append. Only failures
//     are listed.
//   - PULL_MESSAGE: see pull.go. A group seen for the first time starts at
//     the subject's next sequence (only new messages), except on retry
//     subjects (%RETRY%…) where it starts at the oldest retained message (all
//     of a retry subject is meant for its group). That start (ours) is a
//     RESET action, flushed (and with wait.slave.wrote confirmed by the
//     slave) before the first pull is answered, written once per group under
//     the group's lock; broadcast consumers get one each. Known groups
//     resume after the largest sequence any of their consumers pulled (or
//     their RESET). A consumer whose
//     reported last pull offset is behind the broker's gets those entries
//     again first (lost-response redelivery), filtered again with its
//     current tags as QMQ does; leading entries the filter now drops are
//     range-acked by the broker (waiting, when the consumer still holds
//     unacked entries before them, for its ack, so that no ack jumps over
//     them). Tag filters apply; filtered messages advance the cursor without
//     a pull-log entry. Broadcast
//     consumers (or an empty group) have a cursor of their own and pull
//     sequence == consumer-log sequence. Long polls wait on Store.Changed.
//     Retry subjects deliver an entry only message.retry.delay.seconds after
//     it was stored.
//   - ACK_REQUEST: a RANGE_ACK action; begin < 0 is a heartbeat.
//   - CONSUME_MANAGE: moves a group's cursor to the earliest or latest
//     message, or (ours, code 3 followed by an i64 timestamp) to the first
//     message stored at or after a time, found by binary search of the
//     consumer log (Store.SeekTimestamp). Recorded as a RESET action (QMQ
//     keeps it in memory only), so restarts and the slave keep it. The
//     answer body (ours) says where the cursor now is; Java brokers answer
//     an empty body, which is how the metaserver tells they ignored code 3.
//
// # Safety nets
//
// A checker runs every quarter of subscriber.offline.timeout.ms (ours;
// QMQ: 3 min fixed). A consumer not heard from (pull, ack or heartbeat) for
// that long has its pulled, unacked messages re-appended to
// %RETRY%<subject>%<group> (qmq_times incremented, subject rewritten) and
// range-acked, at most put_need_retry_message.limiter messages per second;
// entries an ack jumped over are moved the same way. A message whose
// incremented qmq_times exceeds its qmq_maxRetryNum (32 without one, QMQ's
// client default; the rule of QMQ's consumer, which is where Java dead-letters)
// goes to %DEAD_RETRY%<subject>%<group> instead: stored, never delivered.
// A consumer silent for subscriber.forever.offline.timeout.ms (ours; QMQ: 2
// days) is dropped once nothing it pulled is unacked: a FOREVER_OFFLINE
// action removes its pull log and progress (the group's cursor stays). As in
// QMQ (ConsumerStatusChecker.SkipCheckDuringOffline), consumers are not
// judged while the broker is not online: their silence then says nothing.
package broker
