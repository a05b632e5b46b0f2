// Package attack is the hostile-client suite: it runs the real `qmq` binary
// (`qmq dev --slave`: a metaserver, a master and its slave in one process,
// every port of a broker group open) and attacks each port the way an
// operator's worst day would — garbage, partial frames that declare huge
// bodies, slowloris bodies, idle and surplus connections, slow HTTP bodies and
// idle keep-alives. Each test asserts that the process stays alive, that its
// resident memory stays under a stated bound, that the attack connections are
// closed within the configured timeouts, and that a real producer and
// consumer keep working with nothing acknowledged lost.
//
// The forged-slave and disk-full attacks need a master and slave in separate
// processes and a failover; they live with the broker's fault tests
// (services/broker) and run in the same `make test`.
package attack
