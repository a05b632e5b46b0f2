// Package metricsutil registers Prometheus collectors the way every
// qmq-go component needs: all of a component's series or none (so a
// component that fails to start leaves no half of its series behind, and can
// be opened again on the same registry), and, for client-side series shared
// by several producers or consumers on one registerer, the collector already
// registered in place of a duplicate.
package metricsutil
