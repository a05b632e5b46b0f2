package metaserver

import (
	"math"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// routeTable is a snapshot's subject → route map. Snapshots are copied on
// every local write, and a plain map made each new subject cost a copy of
// every route: n new subjects, O(n²) (a quarter of the metaserver's CPU
// while 10,000 subjects were first sent to). The table copies in two
// levels instead: a write goes into a small overlay, copied per write, and
// the overlay is folded into a fresh base once it has grown to about √n
// entries — O(n·√n) in all. A table is never written after it has been
// published; copy makes the writable successor.
type routeTable struct {
	base    map[string]store.SubjectRoute // shared between snapshots, read-only
	overlay map[string]store.SubjectRoute // the writes since the last fold; owned by this table
}

// newRouteTable holds routes (the map becomes the table's; the caller does
// not use it after).
func newRouteTable(routes map[string]store.SubjectRoute) routeTable {
	return routeTable{base: routes}
}

func (t routeTable) get(subject string) (store.SubjectRoute, bool) {
	if r, ok := t.overlay[subject]; ok {
		return r, true
	}
	r, ok := t.base[subject]
	return r, ok
}

// len counts the subjects (an overlay entry may replace a base one).
func (t routeTable) len() int {
	n := len(t.base)
	for s := range t.overlay {
		if _, ok := t.base[s]; !ok {
			n++
		}
	}
	return n
}

// each calls fn for every route once, in no particular order.
func (t routeTable) each(fn func(store.SubjectRoute)) {
	for _, r := range t.overlay {
		fn(r)
	}
	for s, r := range t.base {
		if _, ok := t.overlay[s]; !ok {
			fn(r)
		}
	}
}

// copy returns a writable successor sharing the base.
func (t routeTable) copy() routeTable {
	return routeTable{base: t.base, overlay: cloneMap(t.overlay)}
}

// set writes a route into a table that copy returned (never into a
// published one).
func (t *routeTable) set(r store.SubjectRoute) {
	if t.overlay == nil {
		t.overlay = map[string]store.SubjectRoute{}
	}
	t.overlay[r.Subject] = r
	if len(t.overlay) <= max(64, int(math.Sqrt(float64(len(t.base))))) {
		return
	}
	base := make(map[string]store.SubjectRoute, len(t.base)+len(t.overlay))
	for s, r := range t.base {
		base[s] = r
	}
	for s, r := range t.overlay {
		base[s] = r
	}
	t.base, t.overlay = base, nil
}
