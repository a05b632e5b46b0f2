// Package admin is a typed client of the metaserver's management API, the
// HTTP API `qmq tools` (QMQ's tools.sh) drives: each action is a form
// posted to http://<metaserver>/management with action=<name> and QMQ's
// parameter names, the API token in the X-Api-Token header.
//
// It exists so that programs and tests manage a cluster with Go values and
// Go errors instead of building `qmq tools` argument strings and parsing
// its output: a refusal comes back as an *Error quoting the metaserver's
// message. `qmq tools` itself posts through Client.Post, so the two cannot
// drift apart on the wire.
//
// The answers are QMQ's JSON shapes (ActionResult's status/message/data,
// or a bare list for ListBrokerGroups and ListSubjectRoutes); the types
// here decode them field for field.
package admin
