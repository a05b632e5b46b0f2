package protocol

// LeaseConsul (ours) is ORed into a BROKER_LEASE op (LeaseClaim,
// LeasePromote) by brokers whose master lease is a Consul session lock:
// the caller holds the group's Consul lock, so the metaserver records the
// term (and, for a promotion, swaps the roles) without checking its own
// lease's expiry; the role and wait.slave.wrote checks still apply.
const LeaseConsul uint8 = 0x80
