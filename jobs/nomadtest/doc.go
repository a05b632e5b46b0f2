// Package nomadtest starts one real Nomad agent per test binary, in dev mode
// (server and client in one process), for tests that run the Nomad jobs of
// jobs/. The agent binary is <repo>/.tools/bin/nomad, built by `make
// nomad`; without it tests fail loudly rather than skip.
//
// The agent listens on free ports of 127.0.0.1 (never 4646, so a developer's
// Nomad is not touched), keeps its data in a temporary directory, enables
// raw_exec, declares the host volumes the test binary asks for, and uses the
// shared Consul agent of consul/consultest.
//
// Its tasks are processes of this machine, and none may outlive the test
// binary: at the end Main stops the agent (in dev mode it destroys its
// allocations) and kills whatever is left of its process tree. A watchdog
// process, the test binary started again in a mode of its own, does the
// same if the test binary dies without getting there (a panic, a test
// timeout, SIGKILL).
package nomadtest
