package console

import (
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
	"time"
)

// timelineSVG draws consume records as one lane per consumer group: a dot
// per pull (hollow) and ack (filled) at its time, left to right. Drawn
// server-side so the page needs no script. Every text is escaped.
func timelineSVG(recs []backupRecord) template.HTML {
	if len(recs) == 0 {
		return ""
	}
	var lanes []string
	laneOf := map[string]int{}
	first, last := recs[0].Timestamp.Time, recs[0].Timestamp.Time
	for _, r := range recs {
		if _, ok := laneOf[r.ConsumerGroup]; !ok {
			laneOf[r.ConsumerGroup] = 0
			lanes = append(lanes, r.ConsumerGroup)
		}
		if r.Timestamp.Before(first) {
			first = r.Timestamp.Time
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp.Time
		}
	}
	sort.Strings(lanes)
	for i, l := range lanes {
		laneOf[l] = i
	}
	const left, width, laneH, top = 180, 620, 34, 24
	span := last.Sub(first)
	if span <= 0 {
		span = time.Millisecond
	}
	h := top + laneH*len(lanes) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" role="img" aria-label="consume records timeline" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, left+width+20, h, left+width+20, h)
	fmt.Fprintf(&b, `<text x="%d" y="14" class="axis">%s</text><text x="%d" y="14" class="axis" text-anchor="end">+%s</text>`,
		left, html.EscapeString(first.UTC().Format("15:04:05.000")), left+width, html.EscapeString(span.Round(time.Millisecond).String()))
	for i, l := range lanes {
		y := top + laneH*i + laneH/2
		fmt.Fprintf(&b, `<text x="4" y="%d" class="lane">%s</text><line x1="%d" y1="%d" x2="%d" y2="%d" class="lane-line"/>`,
			y+4, html.EscapeString(clip(l, 24)), left, y, left+width, y)
	}
	for _, r := range recs {
		x := left + int(float64(width)*float64(r.Timestamp.Sub(first))/float64(span))
		y := top + laneH*laneOf[r.ConsumerGroup] + laneH/2
		kind, class := "pull", "pull"
		if r.Action == 1 {
			kind, class = "ack", "ack"
		}
		if r.Type == 1 {
			class += " retry"
		} else if r.Type == 2 {
			class += " dead"
		}
		fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="6" class="%s"><title>%s %s by %s at %s (sequence %d)</title></circle>`,
			x, y, class, kind, html.EscapeString(r.ConsumerGroup), html.EscapeString(r.ConsumerID),
			html.EscapeString(r.Timestamp.UTC().Format(time.RFC3339Nano)), r.Sequence)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above with every text escaped
}
