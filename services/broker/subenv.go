package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
)

// subEnvRules is QMQ's sub-environment isolation (EnvPullMessageFilter):
// with sub_env_isolation_filter.enable, a pull that carries a
// SUB_ENV_ISOLATION filter (env, subEnv) gets only the messages whose
// qmq_env and qmq_subEnv properties are what a rule says that consumer
// group takes. QMQ clients in a sub-environment rename their group
// <group>_<env>_<subEnv>, so a rule {subject, group, groupEnv, groupSubEnv,
// subjectEnv, subjectSubEnv} is found for a pull of subject by group
// <group>_<groupEnv>_<groupSubEnv> (broadcast consumers: by subject, env and
// subEnv). Without a rule, nothing matches. Pulls without the filter, and
// every pull when the feature is off, are not affected.
//
// Rules are a JSON array of those objects, read from
// sub_env_isolation_filter.rules_url (http(s)://…, as QMQ; ours: or a file
// path) at start and every sub_env_isolation_filter.reload.seconds (QMQ:
// 30 s). A failed reload keeps the rules in force.
type subEnvRules struct {
	s       *instance
	rules   atomic.Pointer[map[string]subEnvRule] // by subject_group_groupEnv_groupSubEnv
	mu      sync.Mutex
	failing bool
}

type subEnvRule struct {
	Subject       string `json:"subject"`
	SubjectEnv    string `json:"subjectEnv"`
	SubjectSubEnv string `json:"subjectSubEnv"`
	Group         string `json:"group"`
	GroupEnv      string `json:"groupEnv"`
	GroupSubEnv   string `json:"groupSubEnv"`
}

func newSubEnvRules(s *instance) *subEnvRules {
	r := &subEnvRules{s: s}
	r.rules.Store(&map[string]subEnvRule{})
	return r
}

// run loads the rules now and then every reload period until ctx ends.
func (r *subEnvRules) run(ctx context.Context) {
	if !r.s.settings.SubEnvIsolation {
		return
	}
	for {
		r.reload(ctx)
		if backoff.Sleep(ctx, r.s.settings.SubEnvReload) != nil {
			return
		}
	}
}

func (r *subEnvRules) reload(ctx context.Context) {
	url := r.s.settings.SubEnvRulesURL
	rules, err := fetchSubEnvRules(ctx, url)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil && !r.failing {
			r.s.log.Error("cannot load sub-environment isolation rules; keeping the rules in force", "sub_env_isolation_filter.rules_url", url,
				"rules_in_force", len(*r.rules.Load()), "retry_in", r.s.settings.SubEnvReload, "error", err)
		}
		r.failing = true
		return
	}
	m := make(map[string]subEnvRule, len(rules))
	for _, rule := range rules {
		m[strings.Join([]string{rule.Subject, rule.Group, rule.GroupEnv, rule.GroupSubEnv}, "_")] = rule
	}
	if old := r.rules.Swap(&m); r.failing || len(*old) != len(m) {
		r.s.log.Info("sub-environment isolation rules loaded", "rules", len(m), "from", url)
	}
	r.failing = false
}

func fetchSubEnvRules(ctx context.Context, url string) ([]subEnvRule, error) {
	var data []byte
	if strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://") {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if data, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20)); err != nil {
			return nil, fmt.Errorf("read %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %s: %.200s", url, resp.Status, bytes.TrimSpace(data))
		}
	} else {
		var err error
		if data, err = os.ReadFile(strings.TrimPrefix(url, "file://")); err != nil {
			return nil, err
		}
	}
	var rules []subEnvRule
	if err := json.Unmarshal(data, &rules); err != nil {
		return nil, fmt.Errorf("%s is not a JSON array of rules like [{\"subject\":…,\"subjectEnv\":…,\"subjectSubEnv\":…,\"group\":…,\"groupEnv\":…,\"groupSubEnv\":…}]: %w", url, err)
	}
	return rules, nil
}

// envFilter is the SUB_ENV_ISOLATION part of one pull: the rule found for
// it (none: nothing matches).
type envFilter struct {
	found       bool
	env, subEnv []byte // the message properties the rule wants
}

// filter returns the pull's SUB_ENV_ISOLATION filter, nil when the feature
// is off or the pull carries none.
func (r *subEnvRules) filter(p *pullParams) *envFilter {
	if !r.s.settings.SubEnvIsolation {
		return nil
	}
	for _, f := range p.Filters {
		if f.Type != protocol.PullFilterSubEnvIsolation {
			continue
		}
		key := p.Subject + "_" + p.ConsumerGroup
		if p.broadcast {
			key = strings.Join([]string{p.Subject, "", f.Env, f.SubEnv}, "_")
		}
		rule, ok := (*r.rules.Load())[key]
		return &envFilter{found: ok, env: []byte(rule.SubjectEnv), subEnv: []byte(rule.SubjectSubEnv)}
	}
	return nil
}

// match reports whether a stored payload's qmq_env and qmq_subEnv are the
// rule's (a message without qmq_env, or without qmq_subEnv, never matches).
func (f *envFilter) match(payload []byte) bool {
	if f == nil {
		return true
	}
	if !f.found {
		return false
	}
	var env, subEnv []byte
	hasSub := false
	protocol.PayloadAttrs(payload, func(k, v []byte) bool {
		switch string(k) {
		case "qmq_env":
			env = v
		case "qmq_subEnv":
			subEnv, hasSub = v, true
		}
		return true
	})
	return len(env) > 0 && hasSub && bytes.Equal(env, f.env) && bytes.Equal(subEnv, f.subEnv)
}

// pullFilter is every server-side filter of one pull.
type pullFilter struct {
	tags []tagFilter
	env  *envFilter
}

func (s *instance) pullFilter(p *pullParams) pullFilter {
	return pullFilter{tags: tagFilters(p.Filters), env: s.subEnv.filter(p)}
}

func (f pullFilter) keep(payload []byte) bool {
	return matchTags(f.tags, payload) && f.env.match(payload)
}
