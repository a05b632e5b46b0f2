// Package storetest is the conformance suite every backup.Store passes:
// Run(t, newStore) writes messages, dead letters and records through the
// Store interface and checks what the queries answer (paging, time bounds,
// newest first, id lookup, dead letters by group, records per kind), the
// errors of bad queries, idempotent re-puts and Close. For tests only.
package storetest
