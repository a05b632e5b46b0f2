// Package framework starts a whole QMQ cluster inside a test: a real
// metaserver (metatest) and real brokers (services/broker), master and
// optionally slave per group, each on its own ports and store under the
// test's temp dir, registered the way an operator registers them. It is
// modelled on nats-server's createJetStreamClusterExplicit/waitOnLeader and
// etcd's tests/framework: one call builds the cluster and waits until it
// serves, and the handles let a test stop, restart and swap brokers and
// wait for the cluster to settle again.
//
// It exists so that tests outside services/broker (clients, tools,
// end-to-end scenarios) stop carrying their own broker start-up code.
// services/broker's own tests cannot use it: this package imports
// services/broker, so package broker importing it would be a cycle.
//
// Every broker's log is captured; when the test fails, each is written to
// the test's log at the end. ClusterOptions.Verbose streams them instead.
package framework
