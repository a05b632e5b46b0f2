package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// multiStartPrefix marks a page cursor of several backups: each backup
// keeps one broker group, so a search asks them all and the next page
// continues each where its own answer stopped.
const multiStartPrefix = "multi:"

// messagesOfAll asks every backup (in parallel) and merges their lists,
// newest first. A page holds up to Len entries of each backup, so nothing
// is skipped between pages; its Next carries each backup's own cursor.
// Backups that cannot be reached are named in the error only when none
// answered.
func (c *backupClient) messagesOfAll(ctx context.Context, path string, q backupQuery) (backupPage, error) {
	starts := map[string]string{}
	addrs := c.addrs
	if strings.HasPrefix(q.Start, multiStartPrefix) {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(q.Start, multiStartPrefix))
		if err == nil {
			err = json.Unmarshal(raw, &starts)
		}
		if err != nil {
			return backupPage{}, &backupRefusal{Status: http.StatusBadRequest, Body: "the page cursor (start) is not one this console made; search again from the first page"}
		}
		addrs = nil
		for _, a := range c.addrs {
			if _, ok := starts[a]; ok {
				addrs = append(addrs, a)
			}
		}
	}
	type answer struct {
		addr string
		page backupPage
		err  error
	}
	answers := make([]answer, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			one := q
			one.Start = starts[a]
			var p backupPage
			err := c.getFrom(ctx, a, path, c.query(one), &p)
			answers[i] = answer{addr: a, page: p, err: err}
		})
	}
	wg.Wait()
	var out backupPage
	next := map[string]string{}
	var errs []error
	answered := 0
	for _, a := range answers {
		var refused *backupRefusal
		switch {
		case a.err == nil:
			answered++
			out.List = append(out.List, a.page.List...)
			if a.page.Next != "" {
				next[a.addr] = string(a.page.Next)
			}
		case errors.As(a.err, &refused) && refused.Status == http.StatusNotFound:
			answered++ // an unknown subject there: that backup's group never had it
		case errors.As(a.err, &refused):
			return backupPage{}, a.err // a bad query: every backup would say so
		default:
			errs = append(errs, fmt.Errorf("%s: %w", a.addr, a.err))
		}
	}
	if answered == 0 && len(errs) > 0 {
		return backupPage{}, fmt.Errorf("no backup reachable (%s): %w", strings.Join(addrs, ", "), errors.Join(errs...))
	}
	sort.SliceStable(out.List, func(i, j int) bool { return out.List[i].CreateTime.After(out.List[j].CreateTime.Time) })
	if len(next) > 0 {
		b, _ := json.Marshal(next)
		out.Next = flexString(multiStartPrefix + base64.RawURLEncoding.EncodeToString(b))
	}
	return out, nil
}
