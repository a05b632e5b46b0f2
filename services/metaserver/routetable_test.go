package metaserver

import (
	"fmt"
	"testing"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// TestRouteTable: every route written is found, counted and listed once,
// also after folds and rewrites, and a published table never changes when
// its successors are written (snapshots are read without locks).
func TestRouteTable(t *testing.T) {
	tbl := newRouteTable(map[string]store.SubjectRoute{"s0": {Subject: "s0", Version: 1}})
	var published []routeTable
	var sizes []int
	want := map[string]int{"s0": 1}
	for i := 1; i <= 5000; i++ {
		n := tbl.copy()
		n.set(store.SubjectRoute{Subject: fmt.Sprintf("s%d", i), Version: 1})
		want[fmt.Sprintf("s%d", i)] = 1
		if i%7 == 0 { // rewrite an older route
			n.set(store.SubjectRoute{Subject: fmt.Sprintf("s%d", i/2), Version: 2})
			want[fmt.Sprintf("s%d", i/2)] = 2
		}
		if i%500 == 0 {
			published = append(published, tbl)
			sizes = append(sizes, tbl.len())
		}
		tbl = n
	}
	if got := tbl.len(); got != 5001 {
		t.Fatalf("len %d, want 5001", got)
	}
	seen := map[string]int{}
	tbl.each(func(r store.SubjectRoute) { seen[r.Subject]++ })
	if len(seen) != 5001 {
		t.Fatalf("each listed %d subjects, want 5001", len(seen))
	}
	for s, n := range seen {
		if n != 1 {
			t.Fatalf("each listed %s %d times", s, n)
		}
	}
	for s, v := range want {
		if r, ok := tbl.get(s); !ok || r.Version != v {
			t.Fatalf("%s: %+v %v, want version %d", s, r, ok, v)
		}
	}
	for k, p := range published {
		if got := p.len(); got != sizes[k] {
			t.Fatalf("published table %d changed size: %d, was %d", k, got, sizes[k])
		}
		if _, ok := p.get(fmt.Sprintf("s%d", sizes[k])); ok {
			t.Fatalf("published table %d sees a later subject", k)
		}
	}
}

// BenchmarkNewSubjects: the snapshot copies of 10,000 subjects created one
// after another (was O(n²) with a plain map copied per write).
func BenchmarkNewSubjects(b *testing.B) {
	b.Run("routeTable", func(b *testing.B) {
		for b.Loop() {
			tbl := newRouteTable(map[string]store.SubjectRoute{})
			for i := range 10000 {
				n := tbl.copy()
				n.set(store.SubjectRoute{Subject: fmt.Sprintf("s%d", i)})
				tbl = n
			}
		}
	})
	b.Run("plainMap", func(b *testing.B) { // what the snapshot did before
		for b.Loop() {
			m := map[string]store.SubjectRoute{}
			for i := range 10000 {
				n := cloneMap(m)
				n[fmt.Sprintf("s%d", i)] = store.SubjectRoute{}
				m = n
			}
		}
	})
}
