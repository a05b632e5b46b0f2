package broker

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

func envMsg(subject, id, env, subEnv string) protocol.Message {
	m := msg(subject, id)
	if env != "" {
		m.Attrs = append(m.Attrs, protocol.Attr{Key: "qmq_env", Value: env}, protocol.Attr{Key: "qmq_subEnv", Value: subEnv})
	}
	return m
}

// With sub_env_isolation_filter.enable, a consumer group of a
// sub-environment (<group>_<env>_<subEnv>, pulling with a SUB_ENV_ISOLATION
// filter) gets the messages its rule names; without a rule it gets none;
// groups without the filter are not affected. Rules are reloaded.
func TestSubEnvIsolation(t *testing.T) {
	var mu sync.Mutex
	rules := `[{"subject":"iso","subjectEnv":"beta","subjectSubEnv":"b1","group":"g","groupEnv":"beta","groupSubEnv":"b1"}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write([]byte(rules))
	}))
	defer srv.Close()
	m := startMeta(t)
	b := startBroker(t, m, true, "sub_env_isolation_filter.enable=true", "sub_env_isolation_filter.rules_url="+srv.URL+"/rules",
		"sub_env_isolation_filter.reload.seconds=1")
	c := b.dial()
	pull := func(group, env, subEnv string, timeout int64) []string {
		r := protocol.PullRequest{Subject: "iso", ConsumerGroup: group, ConsumerID: "c-" + group, RequestNum: 100, Offset: -1,
			PullOffsetBegin: -1, PullOffsetLast: -1, TimeoutMillis: timeout}
		if env != "" {
			r.Filters = []protocol.PullFilter{{Type: protocol.PullFilterSubEnvIsolation, Env: env, SubEnv: subEnv}}
		}
		resp := c.pull(r)
		if resp != nil {
			c.ack("iso", group, "c-"+group, resp.FirstPullLogOffset, resp.FirstPullLogOffset+int64(len(resp.Messages))-1, false)
		}
		return ids(resp)
	}
	testutil.Eventually(t, 5*time.Second, "rules loaded", func() bool { return strings.Contains(b.logs.String(), "sub-environment isolation rules loaded") })
	for _, g := range []string{"g_beta_b1", "g", "g_beta_b2"} {
		pull(g, "", "", -1) // the groups start here
	}
	c.mustSend(envMsg("iso", "b1", "beta", "b1"), envMsg("iso", "b2", "beta", "b2"), envMsg("iso", "plain", "", ""))
	testutil.Eventually(t, 5*time.Second, "dispatch", func() bool { return b.srv.inst().store.MaxSequence("iso") == 2 })
	if got := pull("g_beta_b1", "beta", "b1", 1000); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("g_beta_b1 got %v, want [b1]", got)
	}
	if got := pull("g", "", "", 1000); !slices.Equal(got, []string{"b1", "b2", "plain"}) {
		t.Errorf("g (no filter) got %v", got)
	}
	if got := pull("g_beta_b2", "beta", "b2", 300); got != nil {
		t.Errorf("g_beta_b2 (no rule) got %v", got)
	}

	mu.Lock()
	rules = `[{"subject":"iso","subjectEnv":"beta","subjectSubEnv":"b2","group":"g","groupEnv":"beta","groupSubEnv":"b2"}]`
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	c.mustSend(envMsg("iso", "b2-again", "beta", "b2"), envMsg("iso", "b1-again", "beta", "b1"))
	if got := pull("g_beta_b2", "beta", "b2", 2000); !slices.Equal(got, []string{"b2-again"}) {
		t.Errorf("g_beta_b2 after the reload got %v, want [b2-again]", got)
	}
	if got := pull("g_beta_b1", "beta", "b1", 300); got != nil {
		t.Errorf("g_beta_b1 after its rule was removed got %v", got)
	}
}

func TestSubEnvIsolationNeedsRules(t *testing.T) {
	m := startMeta(t)
	dir := t.TempDir()
	writeFile(t, dir+"/"+FileBroker, "meta.server.endpoint="+m.endpoint()+"\nsub_env_isolation_filter.enable=true\n")
	if _, _, err := LoadSettings(dir, conf.Lookup{Env: noEnv}); err == nil || !strings.Contains(err.Error(), "sub_env_isolation_filter.rules_url") {
		t.Fatalf("got %v", err)
	}
}
