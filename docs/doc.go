// Package docs holds qmq-go's documentation (architecture.md, protocol.md,
// operations.md, configuration.md) and the tests that keep it honest: the
// key tables of configuration.md are generated from the configuration
// loaders (go test ./docs -run TestConfigDoc -update rewrites them, keeping
// the hand-written Meaning column), every configuration key and repository
// path the documents name must exist, and links stay inside the repository.
package docs

//go:generate go test -run TestConfigDoc -update .
