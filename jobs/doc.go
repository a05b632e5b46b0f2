// Package jobs holds the Nomad job specifications that deploy qmq-go, and
// embeds them for the tests that run them against a real Nomad agent.
//
// # The jobs
//
// qmq-metaserver.nomad.hcl runs `qmq metaserver` (job qmq-metaserver, group
// metaserver). It registers itself in Consul as qmq-metaserver, with an HTTP
// check on /health, when consul.address is set, which the job does; the job
// has no Nomad service block, which would register it a second time. Its
// variables:
//
//	admin_token        "": the API token of qmq tools, written to valid-api-tokens.properties;
//	                   empty: read from the Nomad variable nomad/jobs/qmq-metaserver (key admin_token)
//	qmq_binary         /usr/local/bin/qmq (with exec it must lie inside the task's chroot, e.g. under /usr)
//	driver             exec, or raw_exec
//	datacenters        ["*"]
//	metaserver_count   1 (more only with jdbc_url: each SQLite store would be a separate cluster)
//	http_port          8080, meta.server.discover.port
//	tcp_port           20880, meta.server.port
//	consul_address     127.0.0.1:8500, the node's Consul agent
//	volume, store_root qmq-metaserver, /data: the host volume of the embedded SQLite store and where the task sees it
//	jdbc_url, jdbc_username, jdbc_password
//	                   a MySQL database (schema/init.sql) instead of SQLite; then no volume is used
//	metaserver_config  {} more metaserver.properties keys (--set key=value)
//	cpu, memory        500 MHz, 256 MB
//
// qmq-broker.nomad.hcl runs ONE broker group, a master/slave pair, as job
// qmq-broker-<broker_group>: run it once per broker group. The pair is two
// task groups, a and b, each on its own host volume (volume_a, volume_b),
// on different clients (job constraint distinct_hosts, variable
// distinct_hosts). Before a broker starts, a prestart task registers it
// with `qmq tools AddBroker --ifAbsent` (a as role 0, b as role 1, hostname
// ${attr.unique.hostname}, which is the os.Hostname() the broker presents to
// the metaserver, and the node's IP); a broker already in the group is left
// as it is, whatever its role, because an automatic failover swaps the roles
// in the metaserver: a and b are not "master" and "slave". Both brokers get
// the same configuration: meta.server.endpoint (consul://qmq-metaserver by
// default), consul.address, wait.slave.wrote=true and failover.enable=true:
// the slave takes over when the master dies, with the master lease held as a
// Consul session lock (README, High availability). Its variables:
//
//	admin_token                 "": the metaserver's API token, for AddBroker; empty: read from the
//	                            Nomad variable nomad/jobs/qmq-broker-<broker_group> (key admin_token)
//	broker_group                qmq_group01 (AddBroker --brokerGroup; the job ID is qmq-broker-<broker_group>)
//	qmq_binary, driver, datacenters, consul_address, cpu, memory, as above (1000 MHz, 1024 MB)
//	meta_endpoint               consul://qmq-metaserver (?dns=host:port for a Consul DNS other than 127.0.0.1:8600)
//	volume_a, volume_b          qmq-broker-a, qmq-broker-b: host volume names
//	store_root_a, store_root_b  /data: store.root as each task sees it
//	distinct_hosts              true
//	broker_port_a/_b            20881 (broker.port, AddBroker --servePort)
//	sync_port_a/_b              20882 (sync.port, AddBroker --syncPort)
//	http_port_a/_b              8081 (broker.http.port: /health and /metrics)
//	broker_config               {} more broker.properties keys for both brokers (--set key=value)
//	restart_delay               10s: a dead broker is restarted in place after this
//	user                        "" (the driver's default: nobody with exec)
//
// A broker is pinned to its data: it is restarted in place (restart mode
// delay, never giving up), never rescheduled, and not replaced when its
// client loses the Nomad servers. restart_delay is longer than a takeover
// (the lease's health check TTL, 3 s, plus the lock delay), so a
// killed master comes back after its slave has taken over, and rejoins as
// the slave, instead of racing it for the lease. Changing the job replaces
// both brokers of the pair at once (Nomad updates task groups in parallel):
// the group is unavailable meanwhile, and producers use their other groups
// (min.group.num=2).
//
// qmq-watchdog.nomad.hcl runs `qmq watchdog` (job qmq-watchdog, group
// watchdog, watchdog_count 2): the watchdogs of one namespace elect a leader
// on a Consul lock (consul_address is set; election.consul.enable=false in
// watchdog_config elects on the metaserver's leader_election table), which
// resends the
// transactional messages applications left in the client databases
// registered with qmq tools AddDb. Each registers itself in Consul as
// qmq-watchdog with an HTTP check on /health (a dynamic port, so that two
// may share a client). With the metaserver's embedded SQLite store they
// mount its host volume, so they run where it runs; with jdbc_url they read
// its MySQL database and may run anywhere. Its variables:
//
//	qmq_binary, driver, datacenters, consul_address, cpu, memory, as above (300 MHz, 256 MB)
//	watchdog_count     2
//	namespace          default: the room of the datasource_config rows served
//	app_code           qmq-watchdog: appCode of the watchdog's producer
//	meta_endpoint      consul://qmq-metaserver
//	volume, store_root qmq-metaserver, /data: the metaserver's host volume and store.root
//	jdbc_url, jdbc_username, jdbc_password
//	                   the metaserver's MySQL database instead; then no volume is used
//	watchdog_config    {} more watchdog.properties keys (--set key=value)
//
// qmq-delay.nomad.hcl runs ONE delay group as job qmq-delay-<delay_group>,
// with the broker job's conventions (host volume per member, distinct_hosts,
// a prestart AddBroker --ifAbsent, restarted in place, never rescheduled,
// max_client_disconnect; the server registers itself in Consul as
// qmq-delay). It is written for a pair, a (DELAY_MASTER, role 5) and b
// (DELAY_SLAVE, role 6); by default it places a alone: with_slave=true adds
// b, wait.slave.wrote=true, failover.enable=true and sync.secret.file
// (the pair's replication; TestNomadDelayPairFailover runs the pair on one
// node and kills a's task). delay_admin_secret (or the key
// delay_admin_secret of nomad/jobs/qmq-delay-<delay_group>) becomes
// delay.admin.secret, the metaserver's key for CancelDelay; the metaserver
// job takes the same variable (key delay_admin_secret of
// nomad/jobs/qmq-metaserver). Its other variables mirror the broker job's:
// delay_group (qmq_delay01), volume_a/_b (qmq-delay-a/-b), store_root_a/_b,
// broker_port_a/_b (20801), sync_port_a/_b (20802), http_port_a/_b (8082,
// delay.http.port), delay_config ({} more delay.properties keys),
// admin_token, sync_secret, meta_endpoint, consul_address, restart_delay,
// cpu, memory, user, distinct_hosts.
//
// qmq-console.nomad.hcl runs `qmq console` (job qmq-console, group
// console), registered in Consul by a Nomad service block as qmq-console
// with an HTTP check on /health (the console does not register itself).
// Nomad renders its console.properties, with the admin token beside it,
// into secrets/conf from the Consul catalog: the first passing
// qmq-metaserver, every passing qmq-backup and qmq-watchdog; a change
// restarts the console. Without a passing metaserver the address is
// no-passing-qmq-metaserver-in-consul, which the console refuses by name
// (rather than falling back to 127.0.0.1:8080). Its variables:
//
//	qmq_binary, driver, datacenters, consul_address, cpu, memory, as above (200 MHz, 128 MB)
//	http_port          8090 (console.port; 0 a dynamic port)
//	metaserver_http    "": from Consul; host:port pins it
//	backup_http        []: from Consul; host:port each pins them
//	watchdog_http      []: from Consul; host:port each pins them
//	broker_http_ports  {}: from Consul (the http_port meta brokers and delay servers register);
//	                   console.broker.http.ports, "ip:servePort" = "httpPort", overrides it
//	broker_http_offset -1 (unknown): for servers in neither
//	read_open          false (console.read.open)
//	admin_token        "": the key admin_token of nomad/jobs/qmq-console
//	backup_token       "" (console.backup.token)
//	console_config     {} more console.properties keys (--set key=value)
//
// # Running them
//
// Each client that runs a broker or the SQLite metaserver declares its
// host volume in its agent configuration:
//
//	client {
//	  host_volume "qmq-broker-a" {
//	    path      = "/srv/qmq/broker"
//	    read_only = false
//	  }
//	}
//
// (qmq-broker-b on the other machine, qmq-metaserver where the metaserver
// runs; the directory must exist and be writable by the task's user). The
// API token goes into each job's Nomad variable, which its tasks read
// (templates; the task waits until the variable exists), so that it is
// neither in the job nor on a command line: the prestart task hands it to
// qmq tools as QMQ_TOOLS_TOKEN. (-var admin_token=$TOKEN works too, but
// puts it in the job, readable by whoever can read the job.) Then:
//
//	nomad var put nomad/jobs/qmq-metaserver admin_token=$TOKEN
//	nomad var put nomad/jobs/qmq-broker-qmq_group01 admin_token=$TOKEN
//	nomad var put nomad/jobs/qmq-broker-qmq_group02 admin_token=$TOKEN
//	nomad job run jobs/qmq-metaserver.nomad.hcl
//	nomad job run -var broker_group=qmq_group01 jobs/qmq-broker.nomad.hcl
//	nomad job run -var broker_group=qmq_group02 \
//	    -var volume_a=qmq-broker-c -var volume_b=qmq-broker-d jobs/qmq-broker.nomad.hcl
//
// Clients and tools find the metaserver through Consul DNS:
// meta.server.endpoint=consul://qmq-metaserver, `qmq tools ListBrokers
// --metaserver=consul://qmq-metaserver`.
//
// With exec, the host volume is mounted at store_root (default /data, QMQ's
// store.root) and qmq_binary must be visible inside the chroot. raw_exec
// mounts nothing: set store_root (store_root_a, store_root_b) to the host
// volume's path; the volume still decides where the task is placed.
//
// The whole bundle (metaserver, two broker pairs, a delay pair, two
// watchdogs, a backup per group, the console): README, "The whole bundle
// on Nomad"; jobs/demo.sh --bundle runs it on one machine.
//
// # Tests
//
// The specs are embedded (Metaserver, Broker, Delay, Watchdog, Backup,
// Console) and run by the tests through
// the Nomad API with Spec.Parse and Spec.Run: /v1/jobs/parse with the
// variables, then register, as `nomad job run -var …` does. The tests use
// a real Nomad dev agent (jobs/nomadtest, binary built by `make nomad`), a
// real Consul agent (consul/consultest) and the qmq binary built from this
// checkout, with raw_exec on one node: distinct_hosts off and a port set
// per broker. raw_exec runs the binary where the test built it; exec would
// need it inside the chroot (and builds the chroot for each task, about 10
// s on the 2-core test machine). The exec driver itself works on that
// machine (cgroups v1): the spec test plans the broker pair with it, and a
// task run with it by hand wrote to its host volume as nobody (exec refuses
// root unless the client's user denylist allows it). TestNomadBundle runs
// every job together (each with small cpu and memory), with a MariaDB
// client database for the watchdogs, and kills a broker master and the
// delay master through Nomad while producing; TestNomadConsoleBeforeMetaserver
// runs the console first and checks it waits for the metaserver in Consul.
package jobs
