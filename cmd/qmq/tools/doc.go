// Package tools implements `qmq tools`, the Go equivalent of QMQ's tools.sh:
// the same commands, the same flag names, and the metaserver's JSON printed
// as is. Each command posts a form to http://<metaserver>/management with the
// token in X-Api-Token, exactly as QMQ's Java tool does, so the commands in
// QMQ's install guides work when `tools.sh` is replaced by `qmq tools`. The
// post goes through package client/admin, whose typed client programs and
// tests use for the same actions.
//
// Ours: without --token the token is read from QMQ_TOOLS_TOKEN (TokenEnv),
// so scripts and Nomad tasks need not put it on a command line.
package tools
