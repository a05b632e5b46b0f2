package jobs_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

const testBackupAdminToken = "nomad-test-backup-admin-token-0123"

// TestBackupSpecParsesAndValidates: jobs/qmq-backup.nomad.hcl parses
// through the agent and validates: one backup per broker group, pinned to
// its host volume, registered as role 4 by a prestart task, its secrets
// (sync secret, resend token) files in secrets/, never arguments; with
// store_type=hbase the gateway URL is passed. Bad variables are refused
// with the spec's message.
func TestBackupSpecParsesAndValidates(t *testing.T) {
	n := nomadtest.Agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range []struct {
		name  string
		vars  jobs.Vars
		check func(t *testing.T, j *api.Job)
	}{
		{"defaults", jobs.Vars{}, func(t *testing.T, j *api.Job) {
			if *j.ID != "qmq-backup-qmq_group01" || len(j.TaskGroups) != 1 {
				t.Fatalf("job %s with %d groups; want qmq-backup-qmq_group01 with one group", *j.ID, len(j.TaskGroups))
			}
			g := group(t, j, "backup")
			if v := g.Volumes["data"]; v == nil || v.Type != "host" || v.Source != "qmq-backup" {
				t.Errorf("volume %v", v)
			}
			if *g.Count != 1 || *g.RestartPolicy.Mode != "delay" || *g.ReschedulePolicy.Attempts != 0 || *g.ReschedulePolicy.Unlimited {
				t.Errorf("the backup is pinned to its checkpoint: count %d restart %+v reschedule %+v", *g.Count, *g.RestartPolicy, *g.ReschedulePolicy)
			}
			if ports := staticPorts(g); ports["http"] != 8082 {
				t.Errorf("ports %v, want 8082", ports)
			}
			reg := findTask(t, g, "register")
			wantArgs(t, reg, "AddBroker", "--ifAbsent", "--brokerGroup=qmq_group01", "--role=4", "--servePort=${NOMAD_PORT_http}", "--syncPort=8083")
			b := findTask(t, g, "backup")
			if b.Driver != "exec" || len(b.VolumeMounts) != 1 || *b.VolumeMounts[0].Destination != "/data" {
				t.Errorf("exec should mount the volume at /data: %s %v", b.Driver, b.VolumeMounts)
			}
			wantArgs(t, b, "backup", "meta.server.endpoint=consul://qmq-metaserver", "consul.address=127.0.0.1:8500", "store.type=pebble",
				"store.root=/data", "broker.port=${NOMAD_PORT_http}", "backup.server.http.port=${NOMAD_PORT_http}",
				"sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret")
			if slices.ContainsFunc(strArgs(b), func(a string) bool { return strings.HasPrefix(a, "backup.admin.token") }) {
				t.Errorf("resend is off by default: %q", strArgs(b))
			}
			if len(b.Templates) != 1 || *b.Templates[0].DestPath != "secrets/sync.secret" || !strings.Contains(*b.Templates[0].EmbeddedTmpl, `nomadVar "nomad/jobs/qmq-backup-qmq_group01"`) {
				t.Errorf("the sync secret should come from the Nomad variable into secrets/: %v", b.Templates)
			}
		}},
		{"hbase, resend, secrets given", jobs.Vars{"store_type": "hbase", "hbase_rest_url": "http://hbase-rest:8080", "with_resend": true,
			"sync_secret": testSyncSecret, "backup_admin_token": testBackupAdminToken, "broker_group": "g7"}, func(t *testing.T, j *api.Job) {
			b := findTask(t, group(t, j, "backup"), "backup")
			wantArgs(t, b, "store.type=hbase", "backup.hbase.rest.url=http://hbase-rest:8080", "backup.admin.token.file=${NOMAD_SECRETS_DIR}/backup-admin.token")
			for _, a := range strArgs(b) {
				if strings.Contains(a, testSyncSecret) || strings.Contains(a, testBackupAdminToken) {
					t.Errorf("a secret is on the command line: %q", a)
				}
			}
			if len(b.Templates) != 2 {
				t.Errorf("want the sync secret and the resend token templates: %v", b.Templates)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			job, err := jobs.Backup.Parse(ctx, n.Client, c.vars)
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
		})
	}
	for _, c := range []struct {
		vars jobs.Vars
		want string
	}{
		{jobs.Vars{"driver": "docker"}, "The driver must be exec or raw_exec"},
		{jobs.Vars{"broker_group": "a group with spaces"}, "The broker_group must be 1 to 30"},
		{jobs.Vars{"store_type": "mysql"}, "The store_type must be pebble or hbase"},
	} {
		if _, err := jobs.Backup.Parse(ctx, n.Client, c.vars); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want an error mentioning %q", c.vars, err, c.want)
		}
	}
}
