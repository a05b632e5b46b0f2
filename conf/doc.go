// Package conf reads QMQ's .properties configuration files with QMQ's keys and
// defaults, and layers command-line and environment overrides on top.
//
// Precedence, highest first: `--set key=value`, the environment variable
// QMQ_<KEY> (key upper-cased, dots turned into underscores, e.g.
// QMQ_MIN_GROUP_NUM), the file in the --conf directory, then the built-in
// default. Every value error names where the value came from (the file and
// key, the --set flag or the environment variable), the value itself and what
// would be accepted, so start-up stops with a message a person can act on.
//
// The sample files next to this package (metaserver.properties,
// datasource.properties, …) are the commented defaults that `make metaserver` uses.
package conf
