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

// TestDelaySpecParsesAndValidates: jobs/qmq-delay.nomad.hcl parses through
// the agent and validates, with its defaults (group a alone, the DELAY_MASTER,
// until delay replication lands) and with with_slave (the pair: a and b on
// distinct hosts, wait.slave.wrote and the sync secret); its secrets are
// files in secrets/, never arguments; with the one-node test's variables the
// agent can place it. Bad variables are refused with the spec's message.
func TestDelaySpecParsesAndValidates(t *testing.T) {
	n := nomadtest.Agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, c := range []struct {
		name  string
		vars  jobs.Vars
		plan  bool
		check func(t *testing.T, j *api.Job)
	}{
		{"defaults: the master alone", jobs.Vars{}, false, func(t *testing.T, j *api.Job) {
			if *j.ID != "qmq-delay-qmq_delay01" || len(j.TaskGroups) != 1 {
				t.Fatalf("job %s with %d groups; want qmq-delay-qmq_delay01 with group a only", *j.ID, len(j.TaskGroups))
			}
			if !slices.ContainsFunc(j.Constraints, func(c *api.Constraint) bool { return c.Operand == api.ConstraintDistinctHosts }) {
				t.Errorf("a and b should be on distinct hosts: constraints %v", j.Constraints)
			}
			g := group(t, j, "a")
			if v := g.Volumes["data"]; v == nil || v.Type != "host" || v.Source != "qmq-delay-a" {
				t.Errorf("volume %v", v)
			}
			if *g.Count != 1 || *g.RestartPolicy.Mode != "delay" || *g.ReschedulePolicy.Attempts != 0 || *g.ReschedulePolicy.Unlimited {
				t.Errorf("a delay server is pinned to its data: count %d restart %+v reschedule %+v", *g.Count, *g.RestartPolicy, *g.ReschedulePolicy)
			}
			//lint:ignore SA1019 max_client_disconnect is the form of Nomad 1.6, the test agent's (the spec says so)
			if mcd := g.MaxClientDisconnect; mcd == nil || *mcd != time.Hour {
				t.Errorf("max_client_disconnect %v, want 1h", mcd)
			}
			if ports := staticPorts(g); ports["broker"] != 20801 || ports["sync"] != 20802 || ports["http"] != 8082 {
				t.Errorf("ports %v, want QMQ's 20801 and 20802, and 8082", ports)
			}
			reg := findTask(t, g, "register")
			wantArgs(t, reg, "AddBroker", "--ifAbsent", "--brokerGroup=qmq_delay01", "--role=5", "--servePort=${NOMAD_PORT_broker}")
			if len(reg.Templates) != 1 || !strings.Contains(*reg.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/qmq-delay-qmq_delay01"`) {
				t.Errorf("the token should come from the Nomad variable: %v", reg.Templates)
			}
			d := findTask(t, g, "delay")
			if d.Driver != "exec" || len(d.VolumeMounts) != 1 || *d.VolumeMounts[0].Destination != "/data" {
				t.Errorf("exec should mount the volume at /data: %s %v", d.Driver, d.VolumeMounts)
			}
			wantArgs(t, d, "delay", "meta.server.endpoint=consul://qmq-metaserver", "consul.address=127.0.0.1:8500", "store.root=/data",
				"broker.port=${NOMAD_PORT_broker}", "delay.http.port=${NOMAD_PORT_http}", "delay.admin.secret.file=${NOMAD_SECRETS_DIR}/delay-admin.secret")
			for _, a := range strArgs(d) {
				if strings.HasPrefix(a, "sync.secret") || strings.HasPrefix(a, "wait.slave.wrote") {
					t.Errorf("without with_slave the delay server gets no replication key (it would refuse it): %q", a)
				}
			}
			if len(d.Templates) != 1 || *d.Templates[0].DestPath != "secrets/delay-admin.secret" || !strings.Contains(*d.Templates[0].EmbeddedTmpl, ".delay_admin_secret") {
				t.Errorf("the delay admin secret should come from the Nomad variable into secrets/: %v", d.Templates)
			}
		}},
		{"token given, no delay admin secret", jobs.Vars{"admin_token": testToken}, false, func(t *testing.T, j *api.Job) {
			d := findTask(t, group(t, j, "a"), "delay")
			if len(d.Templates) != 0 || slices.ContainsFunc(strArgs(d), func(a string) bool { return strings.HasPrefix(a, "delay.admin.secret") }) {
				t.Errorf("no secret file when neither the variable nor the Nomad variable holds it (a template on a missing Nomad variable would hold the task): %v %q", d.Templates, strArgs(d))
			}
		}},
		{"with_slave: the pair", jobs.Vars{"with_slave": true, "admin_token": testToken, "delay_admin_secret": testDelayAdminSecret, "sync_secret": testSyncSecret}, false, func(t *testing.T, j *api.Job) {
			var first []string
			for i, name := range []string{"a", "b"} {
				g := group(t, j, name)
				wantArgs(t, findTask(t, g, "register"), fmt.Sprintf("--role=%d", 5+i))
				d := findTask(t, g, "delay")
				wantArgs(t, d, "wait.slave.wrote=true", "sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret")
				for _, a := range strArgs(d) {
					if strings.Contains(a, testDelayAdminSecret) || strings.Contains(a, testSyncSecret) {
						t.Errorf("group %s: a secret is on the command line: %q", name, a)
					}
				}
				if len(d.Templates) != 2 {
					t.Errorf("group %s: want the admin and sync secret templates: %v", name, d.Templates)
				}
				if first == nil {
					first = strArgs(d)
				} else if !slices.Equal(first, strArgs(d)) {
					t.Errorf("a and b must run the same configuration:\n a %q\n b %q", first, strArgs(d))
				}
			}
		}},
		{"one-node test", delayTestVars(n, t, "/usr/bin/true", "consul://qmq-metaserver", [3]int{18801, 18802, 18803}), true, func(t *testing.T, j *api.Job) {
			d := findTask(t, group(t, j, "a"), "delay")
			if d.Driver != "raw_exec" || len(d.VolumeMounts) != 0 {
				t.Errorf("raw_exec mounts nothing: %s %v", d.Driver, d.VolumeMounts)
			}
			wantArgs(t, d, "store.root="+n.VolumePath(t, volDelayA))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			job, err := jobs.Delay.Parse(ctx, n.Client, c.vars)
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
	for _, c := range []struct {
		vars jobs.Vars
		want string
	}{
		{jobs.Vars{"driver": "docker"}, "The driver must be exec or raw_exec"},
		{jobs.Vars{"delay_group": "a group with spaces"}, "The delay_group must be 1 to 30"},
	} {
		if _, err := jobs.Delay.Parse(ctx, n.Client, c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want an error mentioning %q", c.vars, err, c.want)
		}
	}
}

// delayTestVars are the delay job's variables on the one-node test agent:
// raw_exec, group a only, its broker, sync and HTTP ports.
func delayTestVars(n *nomadtest.Server, t *testing.T, qmq, metaEndpoint string, ports [3]int) jobs.Vars {
	return jobs.Vars{
		"qmq_binary":         qmq,
		"driver":             "raw_exec",
		"admin_token":        testToken,
		"delay_admin_secret": testDelayAdminSecret,
		"delay_group":        "nomad_delay1",
		"distinct_hosts":     false,
		"volume_a":           volDelayA,
		"volume_b":           volDelayB,
		"store_root_a":       n.VolumePath(t, volDelayA),
		"store_root_b":       n.VolumePath(t, volDelayB),
		"broker_port_a":      ports[0],
		"sync_port_a":        ports[1],
		"http_port_a":        ports[2],
		"consul_address":     n.Consul.HTTPAddr,
		"meta_endpoint":      metaEndpoint,
	}
}
