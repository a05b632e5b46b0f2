package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestConsoleSpecParsesAndValidates: jobs/qmq-console.nomad.hcl parses
// through the agent and validates: the console registered in Consul as
// qmq-console with an HTTP check on /health, its configuration rendered
// into secrets/ from the Consul catalog (or from the variables that pin the
// addresses), the token from the job's Nomad variable or the variable,
// never on the command line. Bad variables are refused with the spec's
// message.
func TestConsoleSpecParsesAndValidates(t *testing.T) {
	n := nomadtest.Agent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range []struct {
		name  string
		vars  jobs.Vars
		check func(t *testing.T, j *api.Job)
	}{
		{"defaults", jobs.Vars{}, func(t *testing.T, j *api.Job) {
			if *j.ID != "qmq-console" || len(j.TaskGroups) != 1 {
				t.Fatalf("job %s with %d groups; want qmq-console with one group", *j.ID, len(j.TaskGroups))
			}
			g := group(t, j, "console")
			if ports := staticPorts(g); ports["http"] != 8090 {
				t.Errorf("ports %v, want http 8090", ports)
			}
			if len(g.Services) != 1 {
				t.Fatalf("services %v: want qmq-console", g.Services)
			}
			s := g.Services[0]
			if s.Name != "qmq-console" || s.Provider != "consul" || s.PortLabel != "http" || len(s.Checks) != 1 ||
				s.Checks[0].Type != "http" || s.Checks[0].Path != "/health" {
				t.Errorf("service %+v checks %+v: want qmq-console in Consul with an HTTP check on /health", s, s.Checks)
			}
			task := findTask(t, g, "console")
			if task.Driver != "exec" || len(task.VolumeMounts) != 0 {
				t.Errorf("driver %s mounts %v: want exec and no volume", task.Driver, task.VolumeMounts)
			}
			wantArgs(t, task, "console", "--conf", "${NOMAD_SECRETS_DIR}/conf", "consul.address=127.0.0.1:8500",
				"console.broker.http.offset=-1", "console.read.open=false", "console.port=${NOMAD_PORT_http}", "console.bind.host=${NOMAD_IP_http}")
			props, tokens := consoleTemplates(t, task)
			for _, want := range []string{`service "qmq-metaserver"`, `service "qmq-backup"`, `service "qmq-watchdog"`,
				"no-passing-qmq-metaserver-in-consul", "console.tokens.file=valid-api-tokens.properties"} {
				if !strings.Contains(props, want) {
					t.Errorf("console.properties template lacks %q:\n%s", want, props)
				}
			}
			if !strings.Contains(tokens, `nomadVar "nomad/jobs/qmq-console"`) {
				t.Errorf("the token should come from the Nomad variable: %s", tokens)
			}
		}},
		{"addresses pinned, token given, dynamic port", jobs.Vars{"metaserver_http": "10.0.0.1:8080", "backup_http": []string{"10.0.0.4:8082", "10.0.0.5:8082"},
			"watchdog_http": []string{"10.0.0.6:8083"}, "broker_http_ports": map[string]string{"10.0.0.2:20881": "8081"}, "admin_token": testToken,
			"http_port": 0, "read_open": true, "driver": "raw_exec"}, func(t *testing.T, j *api.Job) {
			g := group(t, j, "console")
			if ports := staticPorts(g); len(ports) != 0 {
				t.Errorf("http_port 0 should be a dynamic port: static %v", ports)
			}
			task := findTask(t, g, "console")
			wantArgs(t, task, "console.read.open=true")
			for _, a := range strArgs(task) {
				if strings.Contains(a, testToken) {
					t.Errorf("the token is on the command line: %q", a)
				}
			}
			props, tokens := consoleTemplates(t, task)
			for _, want := range []string{"console.metaserver.http=10.0.0.1:8080\n", "console.backup.http=10.0.0.4:8082,10.0.0.5:8082\n",
				"console.watchdog.http=10.0.0.6:8083\n", "console.broker.http.ports=10.0.0.2:20881=8081\n"} {
				if !strings.Contains(props, want) {
					t.Errorf("console.properties template lacks %q:\n%s", want, props)
				}
			}
			if strings.Contains(props, "service \"") {
				t.Errorf("pinned addresses should not be looked up in Consul:\n%s", props)
			}
			if tokens != testToken+"=qmq-console Nomad job\n" {
				t.Errorf("tokens template %q", tokens)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			job, err := jobs.Console.Parse(ctx, n.Client, c.vars)
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
	if _, err := jobs.Console.Parse(ctx, n.Client, jobs.Vars{"driver": "docker"}); err == nil || !strings.Contains(err.Error(), "The driver must be exec or raw_exec") {
		t.Errorf("driver docker: %v; want the spec's message", err)
	}
}

// consoleTemplates returns the console task's console.properties and
// token file templates.
func consoleTemplates(t *testing.T, task *api.Task) (props, tokens string) {
	t.Helper()
	for _, tpl := range task.Templates {
		switch *tpl.DestPath {
		case "secrets/conf/console.properties":
			props = *tpl.EmbeddedTmpl
		case "secrets/conf/valid-api-tokens.properties":
			tokens = *tpl.EmbeddedTmpl
		default:
			t.Errorf("unexpected template %s", *tpl.DestPath)
		}
	}
	if props == "" || tokens == "" {
		t.Fatalf("templates %v: want console.properties and valid-api-tokens.properties in secrets/conf", task.Templates)
	}
	return props, tokens
}
