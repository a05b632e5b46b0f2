// Package deploy holds what an operator loads next to qmq-go: the Grafana
// dashboard (grafana/qmq.json) and the Prometheus alert rules
// (prometheus/alerts.yml), embedded so that tests and tools read exactly
// the files in the repository. docs/metrics.md describes every metric they
// use; cmd/qmq's TestObservabilityDev checks each against a running
// `qmq dev`.
package deploy
