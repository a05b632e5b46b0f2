package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// runStoreSuite checks the behaviour of a Store. open returns a new, empty
// store and closes it at the end of the test. Both backends run it, so it
// also pins down that they behave the same.
func runStoreSuite(t *testing.T, open func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"Ping", testPing},
		{"InsertBroker", testInsertBroker},
		{"ReplaceBroker", testReplaceBroker},
		{"BrokerIPv4", testBrokerIPv4},
		{"UpsertBrokerGroup", testUpsertBrokerGroup},
		{"UpdateBrokerGroupState", testUpdateBrokerGroupState},
		{"MarkBrokerGroupNRWIfStale", testMarkBrokerGroupNRWIfStale},
		{"SubjectInfo", testSubjectInfo},
		{"SubjectRoute", testSubjectRoute},
		{"SubjectRouteConcurrentUpdates", testSubjectRouteConcurrentUpdates},
		{"ClientMeta", testClientMeta},
		{"OfflineState", testOfflineState},
		{"ReadonlySettings", testReadonlySettings},
		{"ClientDBs", testClientDBs},
		{"Unicode", testUnicode},
		{"Limits", testLimits},
		{"SwapMasterSlave", testSwapMasterSlave},
		{"ClaimLease", testClaimLease},
		{"ClaimLeaseExternal", testClaimLeaseExternal},
		{"Close", testClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// ---------------------------------------------------------------- helpers

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawDB gives the test the store's database, to check what is stored.
func rawDB(s Store) *sql.DB { return s.(*sqlStore).db }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustN(t *testing.T, want int64) func(int64, error) {
	return func(n int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("rows affected = %d, want %d", n, want)
		}
	}
}

func wantErrIs(t *testing.T, err, target error, contains string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want errors.Is %v", err, target)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not contain %q", err, contains)
	}
}

// wantPlainErr wants an error that is neither ErrDuplicate nor ErrNotFound.
func wantPlainErr(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", contains)
	}
	if errors.Is(err, ErrDuplicate) || errors.Is(err, ErrNotFound) {
		t.Fatalf("error %v is ErrDuplicate/ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not contain %q", err, contains)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// wantTime checks a time read back: UTC, equal to want truncated to seconds.
func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Fatalf("%s = %v, not in UTC", what, got)
	}
	if w := want.UTC().Truncate(time.Second); !got.Equal(w) {
		t.Fatalf("%s = %v, want %v", what, got, w)
	}
}

// wantRecent checks a time the store set to now.
func wantRecent(t *testing.T, what string, got time.Time, before, after time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Fatalf("%s = %v, not in UTC", what, got)
	}
	if got.Before(before.Truncate(time.Second)) || got.After(after) {
		t.Fatalf("%s = %v, want between %v and %v", what, got, before, after)
	}
}

// ---------------------------------------------------------------- tests

func testPing(t *testing.T, s Store) {
	must(t, s.Ping(ctxT(t)))
}

func testClose(t *testing.T, s Store) {
	must(t, s.Close())
	if err := s.Ping(ctxT(t)); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func testInsertBroker(t *testing.T, s Store) {
	ctx := ctxT(t)
	if got, err := s.ListBrokers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListBrokers on an empty store = %v, %v", got, err)
	}
	brokers := []Broker{
		{Group: "zeta", Role: RoleMaster, Hostname: "host-z1", IP: "10.0.0.3", ServePort: 20881, SyncPort: 20882},
		{Group: "alpha", Role: RoleMaster, Hostname: "host-a1", IP: "10.0.0.1", ServePort: 20881, SyncPort: 20882},
		{Group: "zeta", Role: RoleSlave, Hostname: "host-z2", IP: "10.0.0.4", ServePort: 20881, SyncPort: 20882},
		{Group: "alpha", Role: RoleSlave, Hostname: "host-a1", IP: "10.0.0.1", ServePort: 30881, SyncPort: 30882}, // same host, other port
		{Group: "delay1", Role: RoleDelayMaster, Hostname: "host-d1", IP: "10.0.0.9", ServePort: 20801, SyncPort: 20802},
	}
	for _, b := range brokers {
		must(t, s.InsertBroker(ctx, b))
	}

	// (hostname, serve_port) taken by another group.
	err := s.InsertBroker(ctx, Broker{Group: "other", Role: RoleMaster, Hostname: "host-a1", IP: "10.0.0.7", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrDuplicate, "insert broker other/0")
	// (group_name, role) taken.
	err = s.InsertBroker(ctx, Broker{Group: "zeta", Role: RoleSlave, Hostname: "host-new", IP: "10.0.0.8", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrDuplicate, "insert broker zeta/1")
	// MySQL's utf8mb4_general_ci and SQLite's NOCASE both compare ASCII case-insensitively.
	err = s.InsertBroker(ctx, Broker{Group: "ZETA", Role: RoleMaster, Hostname: "host-x", IP: "10.0.0.8", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrDuplicate, "insert broker ZETA/0")

	got, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers (insertion order)", got, brokers)
}

func testReplaceBroker(t *testing.T, s Store) {
	ctx := ctxT(t)
	m := Broker{Group: "g1", Role: RoleMaster, Hostname: "m1", IP: "192.168.1.1", ServePort: 20881, SyncPort: 20882}
	sl := Broker{Group: "g1", Role: RoleSlave, Hostname: "s1", IP: "192.168.1.2", ServePort: 20881, SyncPort: 20882}
	other := Broker{Group: "g2", Role: RoleMaster, Hostname: "m2", IP: "192.168.1.3", ServePort: 20881, SyncPort: 20882}
	for _, b := range []Broker{m, sl, other} {
		must(t, s.InsertBroker(ctx, b))
	}

	newSlave := Broker{Group: "g1", Role: RoleSlave, Hostname: "s1-new", IP: "192.168.1.22", ServePort: 20891, SyncPort: 20892}
	old, err := s.ReplaceBroker(ctx, newSlave)
	must(t, err)
	equal(t, "old row", old, sl)
	got, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers after replace (same position)", got, []Broker{m, newSlave, other})

	// Replacing with the same values is fine.
	old, err = s.ReplaceBroker(ctx, newSlave)
	must(t, err)
	equal(t, "old row", old, newSlave)

	_, err = s.ReplaceBroker(ctx, Broker{Group: "g1", Role: RoleBackup, Hostname: "b1", IP: "192.168.1.4", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrNotFound, "replace broker g1/4")
	_, err = s.ReplaceBroker(ctx, Broker{Group: "nope", Role: RoleMaster, Hostname: "x", IP: "192.168.1.4", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrNotFound, "replace broker nope/0")

	// The new (hostname, serve_port) belongs to another broker.
	_, err = s.ReplaceBroker(ctx, Broker{Group: "g1", Role: RoleMaster, Hostname: "m2", IP: "192.168.1.3", ServePort: 20881, SyncPort: 20882})
	wantErrIs(t, err, ErrDuplicate, "replace broker g1/0")
	_, err = s.ReplaceBroker(ctx, Broker{Group: "g1", Role: RoleMaster, Hostname: "m1", IP: "not-an-ip", ServePort: 20881, SyncPort: 20882})
	wantPlainErr(t, err, `replace broker g1/0: ip "not-an-ip" is not a dotted IPv4 address`)

	// Nothing changed by the failures.
	got, err = s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers after failed replaces", got, []Broker{m, newSlave, other})
}

func testBrokerIPv4(t *testing.T, s Store) {
	ctx := ctxT(t)
	ips := []struct {
		ip  string
		raw int64 // INET_ATON
	}{
		{"0.0.0.0", 0},
		{"1.2.3.4", 16909060},
		{"127.0.0.1", 2130706433},
		{"10.0.0.255", 167772415},
		{"192.168.100.200", 3232261320},
		{"255.255.255.254", 4294967294},
		{"255.255.255.255", 4294967295},
	}
	var want []Broker
	for i, c := range ips {
		b := Broker{Group: fmt.Sprintf("g%d", i), Role: RoleMaster, Hostname: fmt.Sprintf("h%d", i), IP: c.ip, ServePort: 20881, SyncPort: 20882}
		must(t, s.InsertBroker(ctx, b))
		want = append(want, b)
		var raw int64
		must(t, rawDB(s).QueryRowContext(ctx, "SELECT ip FROM broker WHERE hostname = ?", b.Hostname).Scan(&raw))
		if raw != c.raw {
			t.Errorf("broker.ip for %s = %d, want %d (INET_ATON)", c.ip, raw, c.raw)
		}
	}
	got, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers", got, want)

	for _, bad := range []string{"", "256.1.1.1", "1.2.3", "::1", "::ffff:1.2.3.4", "host.example.com", " 1.2.3.4"} {
		err := s.InsertBroker(ctx, Broker{Group: "bad", Role: RoleMaster, Hostname: "bad", IP: bad, ServePort: 1, SyncPort: 2})
		wantPlainErr(t, err, fmt.Sprintf("insert broker bad/0: ip %q", bad))
	}
}

func testUpsertBrokerGroup(t *testing.T, s Store) {
	ctx := ctxT(t)
	shanghai := time.FixedZone("CST", 8*3600)
	t1 := time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, shanghai) // 2024-05-05 23:08:09.5 UTC
	g := BrokerGroup{Name: "broker-a", Kind: KindNormal, MasterAddress: "10.0.0.1:20881", State: StateRW, Tag: "blue", UpdateTime: t1}
	must(t, s.UpsertBrokerGroup(ctx, g))
	d := BrokerGroup{Name: "delay-a", Kind: KindDelay, MasterAddress: "10.0.0.2:20801", State: StateRW, UpdateTime: t1}
	must(t, s.UpsertBrokerGroup(ctx, d))

	got, err := s.ListBrokerGroups(ctx)
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("ListBrokerGroups = %+v, want 2 groups", got)
	}
	wantTime(t, "UpdateTime", got[0].UpdateTime, t1)
	if got[0].UpdateTime.Format(time.DateTime) != "2024-05-05 23:08:09" {
		t.Fatalf("UpdateTime = %v, want 2024-05-05 23:08:09 UTC", got[0].UpdateTime)
	}
	g.UpdateTime, d.UpdateTime = got[0].UpdateTime, got[1].UpdateTime
	equal(t, "ListBrokerGroups", got, []BrokerGroup{g, d})

	// Upsert again: kind, master_address, broker_state and update_time change, tag stays.
	t2 := t1.Add(time.Hour)
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "broker-a", Kind: KindDelay, MasterAddress: "10.0.0.9:20881", State: StateR, Tag: "red", UpdateTime: t2}))
	got, err = s.ListBrokerGroups(ctx)
	must(t, err)
	wantTime(t, "UpdateTime after upsert", got[0].UpdateTime, t2)
	equal(t, "upserted group", got[0], BrokerGroup{Name: "broker-a", Kind: KindDelay, MasterAddress: "10.0.0.9:20881", State: StateR, Tag: "blue", UpdateTime: got[0].UpdateTime})
	equal(t, "other group", got[1], d)

	// A zero UpdateTime means now.
	before := time.Now()
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "broker-b", Kind: KindNormal, MasterAddress: "10.0.0.3:20881", State: StateRW}))
	got, err = s.ListBrokerGroups(ctx)
	must(t, err)
	wantRecent(t, "zero UpdateTime", got[2].UpdateTime, before, time.Now())
}

func testUpdateBrokerGroupState(t *testing.T, s Store) {
	ctx := ctxT(t)
	t1 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", Kind: KindNormal, MasterAddress: "1.1.1.1:20881", State: StateRW, Tag: "t", UpdateTime: t1}))

	t2 := t1.Add(90 * time.Second)
	mustN(t, 1)(s.UpdateBrokerGroupState(ctx, "g", StateR, t2))
	got, err := s.ListBrokerGroups(ctx)
	must(t, err)
	equal(t, "group", got[0], BrokerGroup{Name: "g", Kind: KindNormal, MasterAddress: "1.1.1.1:20881", State: StateR, Tag: "t", UpdateTime: t2})

	// Same state and time: still one row (matched rows on both backends).
	mustN(t, 1)(s.UpdateBrokerGroupState(ctx, "g", StateR, t2))
	mustN(t, 0)(s.UpdateBrokerGroupState(ctx, "missing", StateR, t2))
}

func testMarkBrokerGroupNRWIfStale(t *testing.T, s Store) {
	ctx := ctxT(t)
	hb := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC) // last heartbeat
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", Kind: KindNormal, MasterAddress: "1.1.1.1:20881", State: StateRW, UpdateTime: hb}))

	now := hb.Add(time.Minute)
	mustN(t, 0)(s.MarkBrokerGroupNRWIfStale(ctx, "g", hb.Add(-time.Second), now)) // heartbeat is newer
	mustN(t, 0)(s.MarkBrokerGroupNRWIfStale(ctx, "g", hb, now))                   // not strictly older
	mustN(t, 0)(s.MarkBrokerGroupNRWIfStale(ctx, "missing", now, now))
	got, err := s.ListBrokerGroups(ctx)
	must(t, err)
	if got[0].State != StateRW {
		t.Fatalf("state = %d after fresh heartbeats, want RW", got[0].State)
	}
	wantTime(t, "UpdateTime", got[0].UpdateTime, hb)

	mustN(t, 1)(s.MarkBrokerGroupNRWIfStale(ctx, "g", hb.Add(time.Second), now))
	got, err = s.ListBrokerGroups(ctx)
	must(t, err)
	if got[0].State != StateNRW {
		t.Fatalf("state = %d, want NRW", got[0].State)
	}
	wantTime(t, "UpdateTime after NRW", got[0].UpdateTime, now)

	// A heartbeat seen by another metaserver after our timer armed wins.
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", Kind: KindNormal, MasterAddress: "1.1.1.1:20881", State: StateRW, UpdateTime: now.Add(30 * time.Second)}))
	mustN(t, 0)(s.MarkBrokerGroupNRWIfStale(ctx, "g", now.Add(time.Second), now.Add(31*time.Second)))
}

func testSubjectInfo(t *testing.T, s Store) {
	ctx := ctxT(t)
	if _, ok, err := s.GetSubjectInfo(ctx, "order.created"); err != nil || ok {
		t.Fatalf("GetSubjectInfo of a missing subject = %v, %v", ok, err)
	}
	t1 := time.Date(2023, 7, 8, 9, 10, 11, 0, time.UTC)
	a := SubjectInfo{Name: "order.created", Tag: "blue", UpdateTime: t1}
	b := SubjectInfo{Name: "a.first", Tag: "", UpdateTime: t1.Add(time.Second)}
	must(t, s.InsertSubjectInfo(ctx, a))
	must(t, s.InsertSubjectInfo(ctx, b))

	got, ok, err := s.GetSubjectInfo(ctx, "order.created")
	must(t, err)
	if !ok {
		t.Fatal("GetSubjectInfo: not found")
	}
	equal(t, "GetSubjectInfo", got, a)

	all, err := s.ListSubjectInfos(ctx)
	must(t, err)
	equal(t, "ListSubjectInfos", all, []SubjectInfo{a, b})

	wantErrIs(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: "order.created", Tag: "red"}), ErrDuplicate, "insert subject info order.created")
	wantErrIs(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: "Order.Created"}), ErrDuplicate, "insert subject info Order.Created")

	before := time.Now()
	must(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: "now"}))
	got, _, err = s.GetSubjectInfo(ctx, "now")
	must(t, err)
	wantRecent(t, "zero UpdateTime", got.UpdateTime, before, time.Now())
}

func testSubjectRoute(t *testing.T, s Store) {
	ctx := ctxT(t)
	if _, ok, err := s.GetSubjectRoute(ctx, "s1"); err != nil || ok {
		t.Fatalf("GetSubjectRoute of a missing subject = %v, %v", ok, err)
	}
	before := time.Now()
	must(t, s.InsertSubjectRoute(ctx, "s1", []string{"broker-b", "broker-a"}))
	must(t, s.InsertSubjectRoute(ctx, "s0", nil))
	after := time.Now()

	r, ok, err := s.GetSubjectRoute(ctx, "s1")
	must(t, err)
	if !ok {
		t.Fatal("GetSubjectRoute: not found")
	}
	wantRecent(t, "UpdateTime", r.UpdateTime, before, after)
	equal(t, "route", r, SubjectRoute{Subject: "s1", BrokerGroups: []string{"broker-b", "broker-a"}, Version: 1, UpdateTime: r.UpdateTime})

	// Stored as QMQ does: a JSON array of names.
	var js string
	must(t, rawDB(s).QueryRowContext(ctx, "SELECT broker_group_json FROM subject_route WHERE subject_info = 's1'").Scan(&js))
	equal(t, "broker_group_json", js, `["broker-b","broker-a"]`)
	must(t, rawDB(s).QueryRowContext(ctx, "SELECT broker_group_json FROM subject_route WHERE subject_info = 's0'").Scan(&js))
	equal(t, "broker_group_json of no groups", js, `[]`)

	wantErrIs(t, s.InsertSubjectRoute(ctx, "s1", []string{"x"}), ErrDuplicate, "insert subject route s1")

	mustN(t, 0)(s.UpdateSubjectRoute(ctx, "s1", 2, []string{"x"})) // wrong version
	mustN(t, 0)(s.UpdateSubjectRoute(ctx, "missing", 1, []string{"x"}))
	mustN(t, 1)(s.UpdateSubjectRoute(ctx, "s1", 1, []string{"broker-b", "broker-a", "broker-c"}))
	mustN(t, 0)(s.UpdateSubjectRoute(ctx, "s1", 1, []string{"x"})) // stale version
	mustN(t, 1)(s.UpdateSubjectRoute(ctx, "s1", 2, []string{"broker-b", "broker-a", "broker-c", "broker-<d>&"}))

	routes, err := s.ListSubjectRoutes(ctx)
	must(t, err)
	if len(routes) != 2 {
		t.Fatalf("ListSubjectRoutes = %+v, want 2", routes)
	}
	equal(t, "routes[0]", routes[0], SubjectRoute{Subject: "s1", BrokerGroups: []string{"broker-b", "broker-a", "broker-c", "broker-<d>&"}, Version: 3, UpdateTime: routes[0].UpdateTime})
	equal(t, "routes[1]", routes[1], SubjectRoute{Subject: "s0", BrokerGroups: []string{}, Version: 1, UpdateTime: routes[1].UpdateTime})

	// A route written by another tool with the column's default ''.
	_, err = rawDB(s).ExecContext(ctx, "INSERT INTO subject_route (subject_info, version) VALUES ('legacy', 7)")
	must(t, err)
	r, ok, err = s.GetSubjectRoute(ctx, "legacy")
	must(t, err)
	if !ok || len(r.BrokerGroups) != 0 || r.Version != 7 {
		t.Fatalf("legacy route = %+v, %v", r, ok)
	}
}

func testSubjectRouteConcurrentUpdates(t *testing.T, s Store) {
	ctx := ctxT(t)
	must(t, s.InsertSubjectRoute(ctx, "hot", []string{"g0"}))
	const workers = 8
	for round := 1; round <= 3; round++ {
		var wg sync.WaitGroup
		results := make([]int64, workers)
		errs := make([]error, workers)
		start := make(chan struct{})
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[w], errs[w] = s.UpdateSubjectRoute(ctx, "hot", round, []string{"g0", fmt.Sprintf("w%d-r%d", w, round)})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for w := range workers {
			must(t, errs[w])
			switch results[w] {
			case 0:
			case 1:
				if winner >= 0 {
					t.Fatalf("round %d: workers %d and %d both updated version %d", round, winner, w, round)
				}
				winner = w
			default:
				t.Fatalf("round %d: worker %d affected %d rows", round, w, results[w])
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no worker updated version %d", round, round)
		}
		r, _, err := s.GetSubjectRoute(ctx, "hot")
		must(t, err)
		equal(t, "route", r, SubjectRoute{Subject: "hot", BrokerGroups: []string{"g0", fmt.Sprintf("w%d-r%d", winner, round)}, Version: round + 1, UpdateTime: r.UpdateTime})
	}
}

func testClientMeta(t *testing.T, s Store) {
	ctx := ctxT(t)
	t1 := time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)
	c := ClientMeta{Subject: "s", ClientType: 2, ConsumerGroup: "cg", ClientID: "host1@@pid1", AppCode: "app", Room: "cn1", UpdateTime: t1}
	must(t, s.InsertClientMeta(ctx, c))
	// Duplicates are ignored and do not change the row.
	dup := c
	dup.AppCode, dup.Room, dup.UpdateTime = "other-app", "cn2", t1.Add(time.Hour)
	must(t, s.InsertClientMeta(ctx, dup))
	// Another client type, group or client id is another row.
	p := ClientMeta{Subject: "s", ClientType: 1, ClientID: "host1@@pid1", AppCode: "app", Room: "cn1", UpdateTime: t1}
	must(t, s.InsertClientMeta(ctx, p))
	c2 := c
	c2.ConsumerGroup = "cg2"
	must(t, s.InsertClientMeta(ctx, c2))
	must(t, s.InsertClientMeta(ctx, ClientMeta{Subject: "other", ClientType: 2, ConsumerGroup: "cg", ClientID: "x", UpdateTime: t1}))

	got, err := s.ListClientMeta(ctx, "s")
	must(t, err)
	equal(t, "ListClientMeta", got, []ClientMeta{c, p, c2})
	got, err = s.ListClientMeta(ctx, "none")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListClientMeta of an unknown subject = %+v", got)
	}
}

func testOfflineState(t *testing.T, s Store) {
	ctx := ctxT(t)
	a := OfflineState{ClientID: "c1", Subject: "s", ConsumerGroup: "g", State: 1}
	b := OfflineState{ClientID: "c2", Subject: "s", ConsumerGroup: "g", State: 1}
	must(t, s.UpsertOfflineState(ctx, a))
	must(t, s.UpsertOfflineState(ctx, b))
	a.State = 0
	must(t, s.UpsertOfflineState(ctx, a))
	must(t, s.UpsertOfflineState(ctx, a)) // unchanged
	got, err := s.ListOfflineStates(ctx)
	must(t, err)
	equal(t, "ListOfflineStates", got, []OfflineState{a, b})
}

func testReadonlySettings(t *testing.T, s Store) {
	ctx := ctxT(t)
	if got, err := s.ListReadonlySettings(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ListReadonlySettings on an empty store = %v, %v", got, err)
	}
	a := ReadonlySetting{Subject: "*", BrokerGroup: "g1"}
	b := ReadonlySetting{Subject: "order", BrokerGroup: "g1"}
	must(t, s.InsertReadonlySetting(ctx, a))
	must(t, s.InsertReadonlySetting(ctx, b))
	must(t, s.InsertReadonlySetting(ctx, a)) // duplicate: no error, no row
	got, err := s.ListReadonlySettings(ctx)
	must(t, err)
	equal(t, "ListReadonlySettings", got, []ReadonlySetting{a, b})

	mustN(t, 1)(s.DeleteReadonlySetting(ctx, a))
	mustN(t, 0)(s.DeleteReadonlySetting(ctx, a))
	mustN(t, 0)(s.DeleteReadonlySetting(ctx, ReadonlySetting{Subject: "order", BrokerGroup: "g2"}))
	got, err = s.ListReadonlySettings(ctx)
	must(t, err)
	equal(t, "ListReadonlySettings after delete", got, []ReadonlySetting{b})
	must(t, s.InsertReadonlySetting(ctx, a)) // again after delete
	got, err = s.ListReadonlySettings(ctx)
	must(t, err)
	equal(t, "ListReadonlySettings after re-insert", got, []ReadonlySetting{b, a})
}

func testClientDBs(t *testing.T, s Store) {
	ctx := ctxT(t)
	a := ClientDB{URL: "mmm://10.0.0.1:3306", User: "qmq", Password: "pw", Status: 0, Room: "default"}
	b := ClientDB{URL: "mmm://10.0.0.2:3306", User: "qmq", Password: "pw2", Status: -1, Room: "cn2"}
	c := ClientDB{URL: "mmm://10.0.0.3:3306", User: "qmq", Password: "", Status: 0, Room: "default"}
	for _, d := range []ClientDB{a, b, c} {
		must(t, s.InsertClientDB(ctx, d))
	}
	wantErrIs(t, s.InsertClientDB(ctx, ClientDB{URL: "mmm://10.0.0.1:3306", Room: "cn2"}), ErrDuplicate, "insert client db mmm://10.0.0.1:3306")

	got, err := s.ListClientDBs(ctx, "default")
	must(t, err)
	equal(t, "ListClientDBs(default)", got, []ClientDB{a, c})
	got, err = s.ListClientDBs(ctx, "cn2")
	must(t, err)
	equal(t, "ListClientDBs(cn2)", got, []ClientDB{b})
	got, err = s.ListClientDBs(ctx, "nowhere")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListClientDBs(nowhere) = %+v", got)
	}
	got, err = s.ListClientDBs(ctx, "")
	must(t, err)
	equal(t, "ListClientDBs(all)", got, []ClientDB{a, b, c})
}

func testUnicode(t *testing.T, s Store) {
	ctx := ctxT(t)
	subject := "订单.创建.🚀"
	group := "组-α-🙂"
	must(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: subject, Tag: "标签🏷"}))
	si, ok, err := s.GetSubjectInfo(ctx, subject)
	must(t, err)
	if !ok || si.Name != subject || si.Tag != "标签🏷" {
		t.Fatalf("GetSubjectInfo = %+v, %v", si, ok)
	}
	must(t, s.InsertSubjectRoute(ctx, subject, []string{group, "b\"q\\"}))
	r, ok, err := s.GetSubjectRoute(ctx, subject)
	must(t, err)
	if !ok || !slices.Equal(r.BrokerGroups, []string{group, "b\"q\\"}) {
		t.Fatalf("GetSubjectRoute = %+v, %v", r, ok)
	}
	b := Broker{Group: group, Role: RoleMaster, Hostname: "主机-1", IP: "10.1.2.3", ServePort: 20881, SyncPort: 20882}
	must(t, s.InsertBroker(ctx, b))
	bs, err := s.ListBrokers(ctx)
	must(t, err)
	equal(t, "ListBrokers", bs, []Broker{b})
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: group, Kind: KindNormal, MasterAddress: "10.1.2.3:20881", State: StateRW, Tag: "蓝"}))
	gs, err := s.ListBrokerGroups(ctx)
	must(t, err)
	if gs[0].Name != group || gs[0].Tag != "蓝" {
		t.Fatalf("ListBrokerGroups = %+v", gs)
	}
	c := ClientMeta{Subject: subject, ClientType: 2, ConsumerGroup: "消费组", ClientID: "客户端😀", AppCode: "应用", Room: "机房", UpdateTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	must(t, s.InsertClientMeta(ctx, c))
	cs, err := s.ListClientMeta(ctx, subject)
	must(t, err)
	equal(t, "ListClientMeta", cs, []ClientMeta{c})
	o := OfflineState{ClientID: "客户端😀", Subject: subject, ConsumerGroup: "消费组", State: 1}
	must(t, s.UpsertOfflineState(ctx, o))
	os, err := s.ListOfflineStates(ctx)
	must(t, err)
	equal(t, "ListOfflineStates", os, []OfflineState{o})
	rs := ReadonlySetting{Subject: subject, BrokerGroup: group}
	must(t, s.InsertReadonlySetting(ctx, rs))
	rss, err := s.ListReadonlySettings(ctx)
	must(t, err)
	equal(t, "ListReadonlySettings", rss, []ReadonlySetting{rs})
	d := ClientDB{URL: "mmm://数据库:3306", User: "用户", Password: "密码🔑", Room: "机房"}
	must(t, s.InsertClientDB(ctx, d))
	ds, err := s.ListClientDBs(ctx, "机房")
	must(t, err)
	equal(t, "ListClientDBs", ds, []ClientDB{d})

	// Lengths are characters, not bytes: 30 four-byte characters fit VARCHAR(30).
	long := strings.Repeat("😀", 30)
	must(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: long, Kind: KindNormal, State: StateRW, Tag: long}))
}

func testLimits(t *testing.T, s Store) {
	ctx := ctxT(t)
	// What MySQL in strict mode rejects, both backends reject, before writing.
	wantPlainErr(t, s.InsertBroker(ctx, Broker{Group: strings.Repeat("g", 31), Role: 0, Hostname: "h", IP: "1.1.1.1", ServePort: 1, SyncPort: 2}),
		"broker.group_name")
	wantPlainErr(t, s.InsertBroker(ctx, Broker{Group: "g", Role: 0, Hostname: strings.Repeat("h", 51), IP: "1.1.1.1", ServePort: 1, SyncPort: 2}),
		"more than the column's 50")
	wantPlainErr(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", MasterAddress: strings.Repeat("1", 26)}), "broker_group.master_address")
	wantPlainErr(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", State: 128}), "broker_group.broker_state 128 is out of the column's range")
	wantPlainErr(t, s.UpsertBrokerGroup(ctx, BrokerGroup{Name: "g", UpdateTime: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}), "TIMESTAMP range")
	wantPlainErr(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: strings.Repeat("s", 101)}), "subject_info.name")
	wantPlainErr(t, s.InsertSubjectInfo(ctx, SubjectInfo{Name: "bad\xff"}), "not valid UTF-8")
	many := make([]string, 30)
	for i := range many {
		many[i] = fmt.Sprintf("broker-group-%02d", i)
	}
	wantPlainErr(t, s.InsertSubjectRoute(ctx, "s", many), "subject_route.broker_group_json")
	must(t, s.InsertSubjectRoute(ctx, "s", many[:5]))
	_, err := s.UpdateSubjectRoute(ctx, "s", 1, many)
	wantPlainErr(t, err, "update subject route s (version 1): subject_route.broker_group_json")
	wantPlainErr(t, s.InsertClientMeta(ctx, ClientMeta{Subject: "s", Room: strings.Repeat("r", 21)}), "client_meta_info.room")
	wantPlainErr(t, s.InsertReadonlySetting(ctx, ReadonlySetting{Subject: "*", BrokerGroup: strings.Repeat("g", 21)}), "readonly_broker_group_setting.broker_group")
	wantPlainErr(t, s.InsertClientDB(ctx, ClientDB{URL: strings.Repeat("u", 129)}), "datasource_config.url")
	wantPlainErr(t, s.UpsertOfflineState(ctx, OfflineState{ClientID: "c", State: -129}), "client_offline_state.state")

	for _, table := range tables {
		var n int
		must(t, rawDB(s).QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
		if want := map[string]int{"subject_route": 1}[table]; n != want {
			t.Errorf("table %s has %d rows after rejected writes, want %d", table, n, want)
		}
	}
}
