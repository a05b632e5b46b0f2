// Package lease is a group master's failover lease, shared by the broker
// (services/broker) and the delay server (services/delay): the master
// holds it and renews it every third of its TTL, stops acknowledging
// writes (fencing) once the lease it last got may have run out, and a
// slave whose master went silent takes the expired lease over, which makes
// the metaserver swap the group's rows.
//
// Two leases implement Lease:
//
//   - Meta, the metaserver's (BROKER_LEASE, ours, on the metaserver's TCP
//     port; table broker_epoch). Client calls it.
//   - Consul, a Consul session lock on <failover.consul.key.prefix><group>/master
//     (consul.Lock), when consul.address is set with failover. The
//     metaserver is still told of each claim and promotion (with
//     protocol.LeaseConsul): it records the terms and their takeover
//     points and swaps the rows, checking roles and wait.slave.wrote but
//     not its own lease's expiry.
//
// What a term is for (the rejoin of a former master, cutting its tail at
// the next term's takeover point) stays with each server: only the holding
// of the lease is here.
package lease
