package store

import (
	"testing"
	"time"
)

func testSwapMasterSlave(t *testing.T, s Store) {
	ctx := ctxT(t)
	m := Broker{Group: "g1", Role: RoleMaster, Hostname: "a", IP: "10.0.0.1", ServePort: 20881, SyncPort: 20882}
	sl := Broker{Group: "g1", Role: RoleSlave, Hostname: "b", IP: "10.0.0.2", ServePort: 20881, SyncPort: 20882}
	other := Broker{Group: "g2", Role: RoleMaster, Hostname: "c", IP: "10.0.0.3", ServePort: 20881, SyncPort: 20882}
	for _, b := range []Broker{m, sl, other} {
		must(t, s.InsertBroker(ctx, b))
	}
	nm, ns, err := s.SwapMasterSlave(ctx, "g1")
	must(t, err)
	equal(t, "new master", nm.Hostname+"/"+string(rune('0'+nm.Role)), "b/0")
	equal(t, "new slave", ns.Hostname+"/"+string(rune('0'+ns.Role)), "a/1")
	all, err := s.ListBrokers(ctx)
	must(t, err)
	roles := map[string]int{}
	for _, b := range all {
		roles[b.Hostname] = b.Role
	}
	equal(t, "roles after swap", roles, map[string]int{"a": RoleSlave, "b": RoleMaster, "c": RoleMaster})
	// and back
	_, _, err = s.SwapMasterSlave(ctx, "g1")
	must(t, err)
	_, _, err = s.SwapMasterSlave(ctx, "g2")
	wantErrIs(t, err, ErrNotFound, "needs a master and a slave")
	_, _, err = s.SwapMasterSlave(ctx, "nope")
	wantErrIs(t, err, ErrNotFound, "needs a master and a slave")
}

func testClaimLease(t *testing.T, s Store) {
	ctx := ctxT(t)
	must(t, s.InsertBroker(ctx, Broker{Group: "g", Role: RoleMaster, Hostname: "a", IP: "10.0.0.1", ServePort: 1, SyncPort: 2}))
	must(t, s.InsertBroker(ctx, Broker{Group: "g", Role: RoleSlave, Hostname: "b", IP: "10.0.0.2", ServePort: 1, SyncPort: 2}))
	now := time.UnixMilli(1_000_000)
	ttl := 3 * time.Second
	master := Claim{Group: "g", Hostname: "a", ServePort: 1, Address: "10.0.0.1:1", MessageOffset: 10, ActionOffset: 5, TTL: ttl}
	slave := Claim{Group: "g", Hostname: "b", ServePort: 1, Address: "10.0.0.2:1", MessageOffset: 100, ActionOffset: 50, TTL: ttl, Promote: true}

	_, err := s.ClaimLease(ctx, slave, now)
	wantErrIs(t, err, ErrUnsafe, "no master of group g has held a lease")
	e, err := s.ClaimLease(ctx, master, now)
	must(t, err)
	equal(t, "first epoch", e.Epoch, int64(1))
	_, err = s.ClaimLease(ctx, Claim{Group: "g", Hostname: "b", ServePort: 1, TTL: ttl}, now)
	wantErrIs(t, err, ErrWrongRole, "not its master")
	// Renewal keeps the epoch and its takeover offsets.
	master.MessageOffset = 999
	e, err = s.ClaimLease(ctx, master, now.Add(time.Second))
	must(t, err)
	equal(t, "renewed", [3]int64{e.Epoch, e.MessageOffset, e.ExpireMillis}, [3]int64{1, 10, now.Add(4 * time.Second).UnixMilli()})
	_, err = s.ClaimLease(ctx, slave, now.Add(2*time.Second))
	wantErrIs(t, err, ErrLeaseHeld, "a:1 (epoch 1)")
	// Expired, but the master ran without wait.slave.wrote.
	_, err = s.ClaimLease(ctx, slave, now.Add(5*time.Second))
	wantErrIs(t, err, ErrUnsafe, "without wait.slave.wrote")
	master.WaitSlaveWrote = true
	_, err = s.ClaimLease(ctx, master, now.Add(5*time.Second))
	must(t, err)
	e, err = s.ClaimLease(ctx, slave, now.Add(9*time.Second))
	must(t, err)
	equal(t, "promoted", [3]int64{e.Epoch, e.MessageOffset, e.ActionOffset}, [3]int64{2, 100, 50})
	all, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "roles after promotion", [2]int{all[0].Role, all[1].Role}, [2]int{RoleSlave, RoleMaster})
	// The old master cannot renew: it is the slave now.
	_, err = s.ClaimLease(ctx, master, now.Add(10*time.Second))
	wantErrIs(t, err, ErrWrongRole, "")
	eps, err := s.ListEpochs(ctx, "g")
	must(t, err)
	equal(t, "epochs", len(eps), 2)
	equal(t, "epoch 2 holder", eps[1].Holder, "b:1")
	// A manual swap ends the lease: the swapped-in master claims at once.
	_, _, err = s.SwapMasterSlave(ctx, "g")
	must(t, err)
	master.WaitSlaveWrote = false
	e, err = s.ClaimLease(ctx, master, now.Add(10*time.Second))
	must(t, err)
	equal(t, "epoch after swap", e.Epoch, int64(3))
}

// An External claim (the broker holds a Consul lock) records the term
// without checking the stored expiry; the role and wait.slave.wrote checks
// still apply.
func testClaimLeaseExternal(t *testing.T, s Store) {
	ctx := ctxT(t)
	must(t, s.InsertBroker(ctx, Broker{Group: "g", Role: RoleMaster, Hostname: "a", IP: "10.0.0.1", ServePort: 1, SyncPort: 2}))
	must(t, s.InsertBroker(ctx, Broker{Group: "g", Role: RoleSlave, Hostname: "b", IP: "10.0.0.2", ServePort: 1, SyncPort: 2}))
	now := time.UnixMilli(1_000_000)
	ttl := 3 * time.Second
	master := Claim{Group: "g", Hostname: "a", ServePort: 1, Address: "10.0.0.1:1", MessageOffset: 10, ActionOffset: 5, TTL: ttl, External: true}
	slave := Claim{Group: "g", Hostname: "b", ServePort: 1, Address: "10.0.0.2:1", MessageOffset: 100, ActionOffset: 50, TTL: ttl, Promote: true, External: true}

	_, err := s.ClaimLease(ctx, slave, now)
	wantErrIs(t, err, ErrUnsafe, "no master of group g has held a lease")
	_, err = s.ClaimLease(ctx, master, now)
	must(t, err)
	_, err = s.ClaimLease(ctx, slave, now.Add(time.Second))
	wantErrIs(t, err, ErrUnsafe, "without wait.slave.wrote")
	master.WaitSlaveWrote = true
	_, err = s.ClaimLease(ctx, master, now.Add(time.Second))
	must(t, err)
	// Unexpired in the database, but the lease is Consul's: granted.
	e, err := s.ClaimLease(ctx, slave, now.Add(2*time.Second))
	must(t, err)
	equal(t, "promoted", [3]int64{e.Epoch, e.MessageOffset, e.ActionOffset}, [3]int64{2, 100, 50})
	_, err = s.ClaimLease(ctx, master, now.Add(3*time.Second))
	wantErrIs(t, err, ErrWrongRole, "")
	// b renews without wait.slave.wrote: a may not take over from it.
	_, err = s.ClaimLease(ctx, Claim{Group: "g", Hostname: "b", ServePort: 1, TTL: ttl, Promote: true, External: true}, now.Add(4*time.Second))
	must(t, err)
	_, err = s.ClaimLease(ctx, Claim{Group: "g", Hostname: "a", ServePort: 1, TTL: ttl, Promote: true, External: true}, now.Add(4*time.Second))
	wantErrIs(t, err, ErrUnsafe, "")
}
