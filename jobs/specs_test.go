package jobs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestSpecsParseAndValidate: every embedded spec parses through the agent
// (/v1/jobs/parse) with its defaults and with the variables of the one-node
// test, validates, and says what the README promises (the broker pair's
// shared failover configuration, its volumes and placement, the
// metaserver's datasource); with the test's variables the agent can place
// every group, with raw_exec or exec, and with distinct_hosts on only one of
// a and b fits on its one node. Bad variables are refused with the spec's
// own message.
func TestSpecsParseAndValidate(t *testing.T) {
	n := nomadtest.Agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, c := range []struct {
		name  string
		spec  jobs.Spec
		vars  jobs.Vars
		plan  bool // the test agent can place it
		check func(t *testing.T, j *api.Job)
	}{
		{"metaserver defaults", jobs.Metaserver, jobs.Vars{"admin_token": testToken}, false, func(t *testing.T, j *api.Job) {
			g := group(t, j, "metaserver")
			task := findTask(t, g, "metaserver")
			if task.Driver != "exec" || task.Config["command"] != "/usr/local/bin/qmq" {
				t.Errorf("driver %s command %v", task.Driver, task.Config["command"])
			}
			if v := g.Volumes["data"]; v == nil || v.Source != "qmq-metaserver" || len(task.VolumeMounts) != 1 || *task.VolumeMounts[0].Destination != "/data" {
				t.Errorf("the SQLite store should be host volume qmq-metaserver mounted at /data: volumes %v, mounts %v", g.Volumes, task.VolumeMounts)
			}
			wantArgs(t, task, "metaserver", "meta.server.discover.port=${NOMAD_PORT_http}", "meta.server.port=${NOMAD_PORT_tcp}",
				"meta.server.advertise.ip=${NOMAD_IP_http}", "consul.address=127.0.0.1:8500", "store.root=/data")
			if ports := staticPorts(g); ports["http"] != 8080 || ports["tcp"] != 20880 {
				t.Errorf("ports %v, want QMQ's 8080 and 20880", ports)
			}
			// Without delay_admin_secret and with the token given, no secret file: CancelDelay is refused.
			if len(task.Templates) != 1 || !strings.HasPrefix(*task.Templates[0].EmbeddedTmpl, testToken+"=") {
				t.Errorf("the token file template: %v", task.Templates)
			}
			if len(g.Services) != 0 || len(task.Services) != 0 {
				t.Errorf("the metaserver registers itself in Consul; a Nomad service block would register it twice")
			}
		}},
		{"metaserver, token from the Nomad variable", jobs.Metaserver, jobs.Vars{}, false, func(t *testing.T, j *api.Job) {
			task := findTask(t, group(t, j, "metaserver"), "metaserver")
			if len(task.Templates) != 2 || !strings.Contains(*task.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/qmq-metaserver"`) {
				t.Errorf("without admin_token the token file should come from the Nomad variable nomad/jobs/qmq-metaserver: %v", task.Templates)
			}
			// delay.admin.secret (CancelDelay) comes from the same Nomad variable, as a file in secrets/.
			if len(task.Templates) == 2 && (*task.Templates[1].DestPath != "secrets/delay-admin.secret" || !strings.Contains(*task.Templates[1].EmbeddedTmpl, ".delay_admin_secret")) {
				t.Errorf("the delay admin secret template: %v", task.Templates[1])
			}
			wantArgs(t, task, "delay.admin.secret.file=${NOMAD_SECRETS_DIR}/delay-admin.secret")
		}},
		{"broker, token from the Nomad variable", jobs.Broker, jobs.Vars{"broker_group": "g3"}, false, func(t *testing.T, j *api.Job) {
			for _, name := range []string{"a", "b"} {
				reg := findTask(t, group(t, j, name), "register")
				if len(reg.Templates) != 1 || !strings.Contains(*reg.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/qmq-broker-g3"`) {
					t.Errorf("group %s: without admin_token the token should come from the Nomad variable nomad/jobs/qmq-broker-g3: %v", name, reg.Templates)
				}
				// The broker task's one template is the sync secret: it needs no token.
				if b := findTask(t, group(t, j, name), "broker"); len(b.Templates) != 1 || strings.Contains(*b.Templates[0].EmbeddedTmpl, "admin_token") {
					t.Errorf("group %s: the broker task should have only the sync secret's template, no token: %v", name, b.Templates)
				}
			}
		}},
		{"metaserver on MySQL", jobs.Metaserver, jobs.Vars{"admin_token": testToken, "jdbc_url": "jdbc:mysql://db:3306/qmq_metaserver?useSSL=false",
			"jdbc_username": "qmq", "jdbc_password": "s3cret", "metaserver_count": 2}, false, func(t *testing.T, j *api.Job) {
			g := group(t, j, "metaserver")
			task := findTask(t, g, "metaserver")
			if len(g.Volumes) != 0 || len(task.VolumeMounts) != 0 || *g.Count != 2 {
				t.Errorf("with MySQL no volume is needed: volumes %v mounts %v count %d", g.Volumes, task.VolumeMounts, *g.Count)
			}
			if task.Env["QMQ_JDBC_URL"] != "jdbc:mysql://db:3306/qmq_metaserver?useSSL=false" || task.Env["QMQ_JDBC_PASSWORD"] != "s3cret" {
				t.Errorf("datasource env %v", task.Env)
			}
			if strings.Contains(fmt.Sprint(task.Config["args"]), "s3cret") {
				t.Errorf("the password is on the command line: %v", task.Config["args"])
			}
		}},
		{"metaserver, one-node test", jobs.Metaserver, metaTestVars(n, t, "/usr/bin/true", 18080, 18880), true, func(t *testing.T, j *api.Job) {
			task := findTask(t, group(t, j, "metaserver"), "metaserver")
			if task.Driver != "raw_exec" || len(task.VolumeMounts) != 0 {
				t.Errorf("raw_exec mounts nothing: driver %s mounts %v", task.Driver, task.VolumeMounts)
			}
			wantArgs(t, task, "store.root="+n.VolumePath(t, volMeta))
		}},
		{"broker defaults", jobs.Broker, jobs.Vars{"admin_token": testToken}, false, func(t *testing.T, j *api.Job) {
			if *j.ID != "qmq-broker-qmq_group01" {
				t.Errorf("job ID %s", *j.ID)
			}
			if !slices.ContainsFunc(j.Constraints, func(c *api.Constraint) bool { return c.Operand == api.ConstraintDistinctHosts }) {
				t.Errorf("a and b should be on distinct hosts: constraints %v", j.Constraints)
			}
			var brokerArgs []string
			for i, name := range []string{"a", "b"} {
				g := group(t, j, name)
				if v := g.Volumes["data"]; v == nil || v.Type != "host" || v.Source != "qmq-broker-"+name {
					t.Errorf("group %s volume %v", name, v)
				}
				if *g.Count != 1 || *g.RestartPolicy.Mode != "delay" || *g.RestartPolicy.Delay != 10*time.Second ||
					*g.ReschedulePolicy.Attempts != 0 || *g.ReschedulePolicy.Unlimited {
					t.Errorf("group %s: count %d restart %+v reschedule %+v: want one broker restarted in place, never rescheduled", name, *g.Count, *g.RestartPolicy, *g.ReschedulePolicy)
				}
				if ports := staticPorts(g); ports["broker"] != 20881 || ports["sync"] != 20882 || ports["http"] != 8081 {
					t.Errorf("group %s ports %v", name, ports)
				}
				reg := findTask(t, g, "register")
				if reg.Lifecycle == nil || reg.Lifecycle.Hook != "prestart" || reg.Lifecycle.Sidecar {
					t.Errorf("group %s: register should be a prestart task: %+v", name, reg.Lifecycle)
				}
				if slices.ContainsFunc(strArgs(reg), func(a string) bool { return strings.Contains(a, testToken) }) {
					t.Errorf("group %s: the token is on the register task's command line: %q", name, strArgs(reg))
				}
				if len(reg.Templates) != 1 || !*reg.Templates[0].Envvars || *reg.Templates[0].EmbeddedTmpl != "QMQ_TOOLS_TOKEN="+testToken+"\n" ||
					!strings.HasPrefix(*reg.Templates[0].DestPath, "secrets/") {
					t.Errorf("group %s: the token should reach qmq tools as QMQ_TOOLS_TOKEN from a template in secrets/: %v", name, reg.Templates)
				}
				wantArgs(t, reg, "AddBroker", "--ifAbsent", "--metaserver=consul://qmq-metaserver",
					"--brokerGroup=qmq_group01", fmt.Sprintf("--role=%d", i), "--hostname=${attr.unique.hostname}",
					"--ip=${NOMAD_IP_broker}", "--servePort=${NOMAD_PORT_broker}", "--syncPort=${NOMAD_PORT_sync}")
				b := findTask(t, g, "broker")
				if b.Driver != "exec" || len(b.VolumeMounts) != 1 || *b.VolumeMounts[0].Volume != "data" || *b.VolumeMounts[0].Destination != "/data" {
					t.Errorf("group %s: exec should mount the volume at /data: %s %v", name, b.Driver, b.VolumeMounts)
				}
				wantArgs(t, b, "broker", "wait.slave.wrote=true", "failover.enable=true", "consul.address=127.0.0.1:8500",
					"meta.server.endpoint=consul://qmq-metaserver", "store.root=/data", "broker.port=${NOMAD_PORT_broker}",
					"sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret")
				// Without sync_secret the secret comes from the job's Nomad variable, into a file in secrets/.
				if len(b.Templates) != 1 || *b.Templates[0].DestPath != "secrets/sync.secret" ||
					!strings.Contains(*b.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/qmq-broker-qmq_group01"`) ||
					!strings.Contains(*b.Templates[0].EmbeddedTmpl, ".sync_secret") {
					t.Errorf("group %s: the sync secret should come from the Nomad variable into secrets/sync.secret: %v", name, b.Templates)
				}
				args := strArgs(b)
				if brokerArgs == nil {
					brokerArgs = args
				} else if !slices.Equal(args, brokerArgs) {
					t.Errorf("a and b must run the same configuration:\n a %q\n b %q", brokerArgs, args)
				}
			}
		}},
		{"broker with an http endpoint and extra keys", jobs.Broker, jobs.Vars{"admin_token": testToken, "broker_group": "g2",
			"meta_endpoint": "http://meta.example:8080/meta/address", "distinct_hosts": false,
			"broker_config": map[string]string{"failover.enable": "false", "messagelog.retention.hours": "168"}}, false, func(t *testing.T, j *api.Job) {
			if slices.ContainsFunc(j.Constraints, func(c *api.Constraint) bool { return c.Operand == api.ConstraintDistinctHosts }) {
				t.Errorf("distinct_hosts=false still constrains: %v", j.Constraints)
			}
			g := group(t, j, "b")
			wantArgs(t, findTask(t, g, "register"), "--metaserver=meta.example:8080", "--brokerGroup=g2", "--role=1")
			b := findTask(t, g, "broker")
			wantArgs(t, b, "failover.enable=false", "messagelog.retention.hours=168", "meta.server.endpoint=http://meta.example:8080/meta/address")
			if slices.Contains(strArgs(b), "failover.enable=true") {
				t.Errorf("broker_config should override failover.enable: %q", strArgs(b))
			}
		}},
		{"broker pair, one-node test", jobs.Broker, brokerTestVars(n, t, "/usr/bin/true", "consul://qmq-metaserver", [6]int{18881, 18882, 18883, 18891, 18892, 18893}), true, func(t *testing.T, j *api.Job) {
			for _, name := range []string{"a", "b"} {
				b := findTask(t, group(t, j, name), "broker")
				if b.Driver != "raw_exec" || len(b.VolumeMounts) != 0 {
					t.Errorf("group %s: raw_exec mounts nothing: %s %v", name, b.Driver, b.VolumeMounts)
				}
				wantArgs(t, b, "store.root="+n.VolumePath(t, map[string]string{"a": volA, "b": volB}[name]))
			}
		}},
		{"broker pair with exec on the test agent", jobs.Broker, withVars(brokerTestVars(n, t, "/usr/bin/true", "consul://qmq-metaserver", [6]int{18881, 18882, 18883, 18891, 18892, 18893}),
			jobs.Vars{"driver": "exec", "store_root_a": "/data", "store_root_b": "/data"}), true, func(t *testing.T, j *api.Job) {
			for _, name := range []string{"a", "b"} {
				b := findTask(t, group(t, j, name), "broker")
				if b.Driver != "exec" || len(b.VolumeMounts) != 1 || *b.VolumeMounts[0].Destination != "/data" {
					t.Errorf("group %s: exec mounts the volume at /data: %s %v", name, b.Driver, b.VolumeMounts)
				}
			}
		}},
		{"watchdog defaults", jobs.Watchdog, jobs.Vars{}, false, func(t *testing.T, j *api.Job) {
			g := group(t, j, "watchdog")
			task := findTask(t, g, "watchdog")
			if *g.Count != 2 || task.Driver != "exec" {
				t.Errorf("count %d driver %s: want two watchdogs with exec", *g.Count, task.Driver)
			}
			if v := g.Volumes["data"]; v == nil || v.Source != "qmq-metaserver" || len(task.VolumeMounts) != 1 || *task.VolumeMounts[0].Destination != "/data" {
				t.Errorf("without jdbc_url the watchdogs should mount the metaserver's host volume at /data: volumes %v, mounts %v", g.Volumes, task.VolumeMounts)
			}
			wantArgs(t, task, "watchdog", "appCode=qmq-watchdog", "namespace=default", "meta.server.endpoint=consul://qmq-metaserver",
				"consul.address=127.0.0.1:8500", "store.root=/data", "watchdog.http.port=${NOMAD_PORT_http}", "watchdog.bind.host=${NOMAD_IP_http}")
			if ports := staticPorts(g); len(ports) != 0 {
				t.Errorf("static ports %v: two watchdogs may share a node, so the HTTP port is dynamic", ports)
			}
			if len(g.Services) != 0 || len(task.Services) != 0 {
				t.Errorf("the watchdog registers itself in Consul; a Nomad service block would register it twice")
			}
		}},
		{"watchdog on MySQL", jobs.Watchdog, jobs.Vars{"jdbc_url": "jdbc:mysql://db:3306/qmq_metaserver", "jdbc_username": "qmq", "jdbc_password": "s3cret",
			"namespace": "cn2", "watchdog_config": map[string]string{"checkInterval": "30000"}}, false, func(t *testing.T, j *api.Job) {
			g := group(t, j, "watchdog")
			task := findTask(t, g, "watchdog")
			if len(g.Volumes) != 0 || len(task.VolumeMounts) != 0 {
				t.Errorf("with MySQL no volume is needed: volumes %v mounts %v", g.Volumes, task.VolumeMounts)
			}
			if task.Env["QMQ_JDBC_URL"] != "jdbc:mysql://db:3306/qmq_metaserver" || task.Env["QMQ_JDBC_PASSWORD"] != "s3cret" {
				t.Errorf("datasource env %v", task.Env)
			}
			if strings.Contains(fmt.Sprint(task.Config["args"]), "s3cret") {
				t.Errorf("the password is on the command line: %v", task.Config["args"])
			}
			wantArgs(t, task, "namespace=cn2", "checkInterval=30000")
		}},
		{"watchdogs, one-node test", jobs.Watchdog, jobs.Vars{"qmq_binary": "/usr/bin/true", "driver": "raw_exec", "consul_address": n.Consul.HTTPAddr,
			"volume": volMeta, "store_root": n.VolumePath(t, volMeta)}, true, func(t *testing.T, j *api.Job) {
			task := findTask(t, group(t, j, "watchdog"), "watchdog")
			if task.Driver != "raw_exec" || len(task.VolumeMounts) != 0 {
				t.Errorf("raw_exec mounts nothing: driver %s mounts %v", task.Driver, task.VolumeMounts)
			}
			wantArgs(t, task, "store.root="+n.VolumePath(t, volMeta))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			job, err := c.spec.Parse(ctx, n.Client, c.vars)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := n.Client.Jobs().Validate(job, (&api.WriteOptions{}).WithContext(ctx))
			if err != nil {
				t.Fatalf("validate %s: %v", *job.ID, err)
			}
			if v.Error != "" || len(v.ValidationErrors) > 0 || v.Warnings != "" {
				t.Fatalf("validate %s: error %q %v, warnings %q", *job.ID, v.Error, v.ValidationErrors, v.Warnings)
			}
			c.check(t, job)
			if c.plan {
				p, _, err := n.Client.Jobs().Plan(job, false, (&api.WriteOptions{}).WithContext(ctx))
				if err != nil {
					t.Fatalf("plan %s: %v", *job.ID, err)
				}
				for g, m := range p.FailedTGAllocs {
					t.Errorf("plan %s: group %s cannot be placed on the test agent: %+v", *job.ID, g, *m)
				}
			}
		})
	}

	// distinct_hosts applies across the two groups: on one node only one of
	// a and b can be placed.
	job, err := jobs.Broker.Parse(ctx, n.Client, withVars(brokerTestVars(n, t, "/usr/bin/true", "consul://qmq-metaserver", [6]int{18881, 18882, 18883, 18891, 18892, 18893}),
		jobs.Vars{"distinct_hosts": true}))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := n.Client.Jobs().Plan(job, false, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("plan %s: %v", *job.ID, err)
	}
	if len(p.FailedTGAllocs) != 1 {
		t.Errorf("distinct_hosts on one node: %d groups unplaceable, want 1 (a and b must not share a node): %v", len(p.FailedTGAllocs), p.FailedTGAllocs)
	}

	// Refusals come from the specs' validation blocks.
	for _, c := range []struct {
		spec jobs.Spec
		vars jobs.Vars
		want string
	}{
		{jobs.Metaserver, jobs.Vars{"admin_token": "a=b"}, "valid-api-tokens.properties"},
		{jobs.Broker, jobs.Vars{"admin_token": testToken, "driver": "docker"}, "The driver must be exec or raw_exec"},
		{jobs.Broker, jobs.Vars{"admin_token": testToken, "broker_group": "a group with spaces"}, "The broker_group must be 1 to 30"},
	} {
		if _, err := c.spec.Parse(ctx, n.Client, c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %v: %v; want an error mentioning %q", c.spec.File, redacted(c.vars), err, c.want)
		}
	}
}

// metaTestVars are the metaserver job's variables on the one-node test agent.
func metaTestVars(n *nomadtest.Server, t *testing.T, qmq string, httpPort, tcpPort int) jobs.Vars {
	return jobs.Vars{
		"qmq_binary":     qmq,
		"driver":         "raw_exec",
		"admin_token":    testToken,
		"http_port":      httpPort,
		"tcp_port":       tcpPort,
		"consul_address": n.Consul.HTTPAddr,
		"volume":         volMeta,
		"store_root":     n.VolumePath(t, volMeta),
	}
}

// brokerTestVars are the broker job's variables on the one-node test agent:
// raw_exec, both brokers on this node, so with their own ports (broker,
// sync and HTTP port of a, then of b).
func brokerTestVars(n *nomadtest.Server, t *testing.T, qmq, metaEndpoint string, ports [6]int) jobs.Vars {
	return jobs.Vars{
		"qmq_binary":     qmq,
		"driver":         "raw_exec",
		"admin_token":    testToken,
		"sync_secret":    testSyncSecret,
		"broker_group":   "nomad_g1",
		"distinct_hosts": false,
		"volume_a":       volA,
		"volume_b":       volB,
		"store_root_a":   n.VolumePath(t, volA),
		"store_root_b":   n.VolumePath(t, volB),
		"broker_port_a":  ports[0],
		"sync_port_a":    ports[1],
		"http_port_a":    ports[2],
		"broker_port_b":  ports[3],
		"sync_port_b":    ports[4],
		"http_port_b":    ports[5],
		"consul_address": n.Consul.HTTPAddr,
		"meta_endpoint":  metaEndpoint,
	}
}

// withVars returns base with more set (overriding base's).
func withVars(base, more jobs.Vars) jobs.Vars {
	out := jobs.Vars{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func group(t *testing.T, j *api.Job, name string) *api.TaskGroup {
	t.Helper()
	for _, g := range j.TaskGroups {
		if *g.Name == name {
			return g
		}
	}
	t.Fatalf("job %s has no group %q", *j.ID, name)
	return nil
}

func findTask(t *testing.T, g *api.TaskGroup, name string) *api.Task {
	t.Helper()
	for _, task := range g.Tasks {
		if task.Name == name {
			return task
		}
	}
	t.Fatalf("group %s has no task %q", *g.Name, name)
	return nil
}

func staticPorts(g *api.TaskGroup) map[string]int {
	out := map[string]int{}
	for _, n := range g.Networks {
		for _, p := range n.ReservedPorts {
			out[p.Label] = p.Value
		}
	}
	return out
}

func strArgs(task *api.Task) []string {
	raw, _ := task.Config["args"].([]any)
	out := make([]string, len(raw))
	for i, a := range raw {
		out[i] = fmt.Sprint(a)
	}
	return out
}

// wantArgs checks that each of want is one of the task's arguments (a
// --set key=value appears as its key=value argument).
func wantArgs(t *testing.T, task *api.Task, want ...string) {
	t.Helper()
	args := strArgs(task)
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("task %s: argument %q missing from %q", task.Name, w, args)
		}
	}
}

func redacted(v jobs.Vars) jobs.Vars {
	out := jobs.Vars{}
	for k, x := range v {
		if k == "admin_token" || k == "sync_secret" || k == "delay_admin_secret" {
			x = "<redacted>"
		}
		out[k] = x
	}
	return out
}
