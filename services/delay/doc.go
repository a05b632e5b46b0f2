// Package delay is the delay server (`qmq delay`): it takes QMQ's delay and
// scheduled messages from producers, keeps them until they are due and then
// sends them to the subject's real-time brokers, following QMQ's
// qmq-delay-server (QMQ reference §4; docs/architecture.md).
//
// # Lifecycle (server.go, register.go)
//
// New opens the delay store (storage/delaystore) under store.root and binds
// broker.port (20801) and delay.http.port. Run asks the metaserver for the
// server's group and role (BROKER_ACQUIRE_META, retried every
// meta.retry.interval.ms with a log line naming the hostname and port that
// must be registered), then registers ONLINE as DELAY_MASTER (role 5) and
// heartbeats every broker.heartbeat.interval.ms; at shutdown it sends
// OFFLINE. A DELAY_SLAVE (role 6) registers nothing: it replicates.
//
// # Replication (replica.go, replstore.go, syncpeer.go, failover.go)
//
// The pair uses services/replication with replication.DelayLogs: the
// DELAY_MASTER serves sync.port, the DELAY_SLAVE copies the message log
// (sync type 2) and the dispatch log (4, QMQ's "dispatch") byte for byte
// into its delay store, which rebuilds its schedule from the copied
// messages and takes copied dispatch records out of its wheel. There are no
// checkpoints to hand over. The master admits only a slave that proves
// sync.secret (syncauth) from the IP of the group's DELAY_SLAVE row.
// With wait.slave.wrote a send is answered once the slave reports the
// message log's end past it (replication.Master.WaitSlaveWrote), else
// BROKER_BUSY after wait.slave.wrote.timeout.ms. The slave takes no sends
// (BROKER_READ_ONLY) and dispatches nothing. /health shows the slave's lag
// (master) or the master's state (slave).
//
// Failover (failover.go, lease.go): both roles ask the metaserver for
// their role every heartbeat interval, and a changed role (SwapMasterSlave,
// the manual failover) stops the server with an error saying so, for its
// supervisor to start it again in the new role. With failover.enable the
// master holds its group's lease (services/lease, shared with the broker:
// the metaserver's BROKER_LEASE, or with consul.address a Consul session
// lock on qmq/delay/<group>/master, failover.consul.*) and is fenced (no
// sends, no dispatching) once the lease it last got may have run out; a
// caught-up slave whose master is silent takes over the expired lease
// (the metaserver swaps the rows) and stops the same way (releasing a
// Consul lock for its restart). A promoted slave's store opens its copy
// and dispatches exactly what the copied dispatch log does not record as
// sent. With wait.slave.wrote the master sends a batch only once the
// slave has confirmed the dispatch log as it ends before the batch
// (dispatchgate.go), so what goes out twice after a failover is at most
// one batch (delay.send.batch.size), and a master cut off from its slave
// stops dispatching by itself; a slave silent for
// wait.slave.wrote.timeout.ms (or none connected since the start) while
// the master is still the group's (no lease, or one renewed since) is
// given up on until it confirms again. A demoted master stops
// without OFFLINE. A former master rejoins as slave if its logs end
// within the next term's takeover point; if they go past the point a lease
// promotion recorded, it closes its store, cuts both logs there
// (delaystore.TruncateLogs) and stops to be started again, then copies
// (rejoin.go); a live master that learns it was demoted cuts on its way
// out. Without failover.enable a master still records its term once at
// start (one BROKER_LEASE claim, never renewed), so a manual swap has a
// takeover point too, and the former master rejoins the same way; only
// without a recorded later term does it stop and say to delete
// store.root.
//
// # Receiving (receive.go, schedule.go)
//
// SEND_MESSAGE (code 10) on broker.port is decoded with the protocol
// package; each message's bytes are stored exactly as received (CRC
// included). The schedule time is the expire-time slot when the delay flag
// is set, QMQ's way: a time in the past is now, one beyond two years is now
// plus two years; a message without the flag is due ten seconds after
// receipt (QMQ treats it as a producer's configuration error). An illegal
// subject or a missing id is refused BLOCK, a message over per.message.size
// BLOCK with the sizes, a full disk BROKER_READ_ONLY with the reason (and
// read-only heartbeats until an append works again). Before ONLINE every
// message is answered BROKER_READ_ONLY.
//
// # Dispatching (dispatch.go, routes.go)
//
// The master loops Store.Due → Store.Read → SEND_MESSAGE of the original
// bytes to a master of the subject's real-time groups, which it learns as a
// PRODUCER client (CLIENT_REGISTER, client type 1) and round-robins, then
// Store.MarkDispatched once the broker acknowledged. QMQ's delay server
// rewrites nothing in the message: the delay flag and schedule time stay,
// so a consumer sees when the message was due (client.Message.ScheduledAt).
// A subject whose send fails is parked: its messages are retried with
// backoff (internal/backoff, with jitter) on another group with fresh
// routes, while other subjects go on; the last known routes serve while
// the metaserver is down. Nothing is dropped: a message that no broker
// takes is retried until one does, and shows in /health (parked,
// dueLagMillis) meanwhile.
//
// # Observability (http.go, metrics.go)
//
// delay.http.port serves /health (status, group, role, online, pending,
// pendingSubjects, pendingInWindow, dispatched, dueLagMillis, parked,
// dispatchWaitingForSlaveMillis, dispatchWithoutSlave, diskFull, slave or
// master), /subjects (per subject of the whole store: pending, earliestDue;
// the console's delay page) and /metrics
// (qmq_delay_received_total, qmq_delay_rejected_total,
// qmq_delay_dispatched_total, qmq_delay_dispatch_failures_total,
// qmq_delay_dispatch_lateness_seconds, qmq_delay_scheduled,
// qmq_delay_due_lag_seconds, qmq_delay_parked,
// qmq_delay_dispatch_waiting_for_slave_seconds, and the store's
// qmq_delay_store_* series, qmq_delay_store_subject_pending_messages for
// the 50 subjects with most pending). With consul.address set the server registers
// as qmq-delay (tags group:, role:delay_master or role:delay_slave, updated in place on a role change; a TCP check on broker.port).
//
// # Cancelling (cancel.go, package delayadmin)
//
// CANCEL_DELAY (ours) withdraws a scheduled message (Store.Cancel, a
// dispatch-log record). broker.port is open to unauthenticated clients, so
// the request must be signed with delay.admin.secret, which only the
// metaserver (its CancelDelay action, behind the API token) and the delay
// servers hold; a refusal is answered BROKER_REJECT and logged rate-limited,
// never with the secret. Only the master cancels.
package delay
