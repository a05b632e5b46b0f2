// Package benchreport writes a benchmark run (internal/loadgen results of
// one or more systems) as one self-contained HTML file: throughput over
// time and the end-to-end latency curve per system as inline SVG, and the
// figures in a table. No script and no external asset: it opens offline,
// and two reports compare side by side in two tabs. `qmq bench --html` and
// bench/cmd/peer --html use it.
package benchreport
