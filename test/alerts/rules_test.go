package alerts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "kubehook-alerts.yaml"
	rulesTestFile = "kubehook-alerts_test.yaml"
)

// ruleTests is promtool's rule unit-test file (`promtool test rules`),
// the part of it these tests use: alert tests on input series.
type ruleTests struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval model.Duration  `yaml:"evaluation_interval"`
	Tests              []ruleTestGroup `yaml:"tests"`
}

type ruleTestGroup struct {
	Name          string          `yaml:"name"`
	Interval      model.Duration  `yaml:"interval"`
	InputSeries   []inputSeries   `yaml:"input_series"`
	AlertRuleTest []alertTestCase `yaml:"alert_rule_test"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

func loadRuleTests(t *testing.T) ruleTests {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filesDir, rulesTestFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a promtool feature these tests do not run is an error, not skipped
	var rt ruleTests
	if err := dec.Decode(&rt); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Equal(rt.RuleFiles, []string{rulesFile}) {
		t.Fatalf("%s: rule_files %v, want [%s]", rulesTestFile, rt.RuleFiles, rulesFile)
	}
	if rt.EvaluationInterval == 0 {
		rt.EvaluationInterval = model.Duration(time.Minute)
	}
	return rt
}

func parseRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join(filesDir, rulesFile), false, model.UTF8Validation, promqlParser, promslog.NewNopLogger())
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return groups
}

// Every alert can be acted on: it waits (for:) before firing, says how bad
// it is, what is wrong and what to do, and queries only kubehook's metrics.
func TestAlertRulesAreComplete(t *testing.T) {
	defined := definedMetrics(t)
	groups := parseRules(t)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if r.For <= 0 {
				t.Errorf("%s: no for:, it would fire on a single evaluation", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity label %q, want critical, warning or info", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			checkMetricsDefined(t, "alert "+r.Alert, r.Expr, defined)
		}
	}
	if n == 0 {
		t.Fatal("no alerts in " + rulesFile)
	}
}

// Every alert has a test in which it fires and one in which it stays
// silent, so an alert that can never fire (or always does) is caught.
func TestEveryAlertIsTestedFiringAndSilent(t *testing.T) {
	rt := loadRuleTests(t)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tg := range rt.Tests {
		for _, tc := range tg.AlertRuleTest {
			if len(tc.ExpAlerts) > 0 {
				fires[tc.Alertname] = true
			} else {
				silent[tc.Alertname] = true
			}
		}
	}
	known := map[string]bool{}
	for _, g := range parseRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			known[r.Alert] = true
			if !fires[r.Alert] {
				t.Errorf("%s: no test in which it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("%s: no test in which it stays silent", r.Alert)
			}
		}
	}
	for name := range fires {
		if !known[name] {
			t.Errorf("%s is tested but is no alert of %s", name, rulesFile)
		}
	}
}

// The rules file's unit tests, run as `promtool test rules` runs them: the
// input series are loaded from time 0, the rule groups evaluated every
// evaluation_interval, and at each eval_time the alerts firing under
// alertname must be exactly the expected ones, labels and annotations.
func TestAlertRules(t *testing.T) {
	rt := loadRuleTests(t)
	for i, tg := range rt.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("test%d", i+1)
		}
		t.Run(name, func(t *testing.T) { runRuleTestGroup(t, rt, tg) })
	}
}

func runRuleTestGroup(t *testing.T, rt ruleTests, tg ruleTestGroup) {
	interval := time.Duration(tg.Interval)
	if interval == 0 {
		interval = time.Minute
	}
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", model.Duration(interval))
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	storage := promqltest.LoadedStorage(t, load.String())
	engine := promqltest.NewTestEngine(t, false, 0, 1_000_000)

	ctx := t.Context()
	mgr := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, storage),
		AppendableV2: storage,
		Queryable:    storage,
		Context:      ctx,
		Logger:       promslog.NewNopLogger(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Parser:       promqlParser,
	})
	loaded, errs := mgr.LoadGroups(time.Duration(rt.EvaluationInterval), labels.EmptyLabels(), "", nil, false, filepath.Join(filesDir, rulesFile))
	for _, err := range errs {
		t.Fatal(err)
	}
	groups := make([]*rules.Group, 0, len(loaded))
	for _, g := range loaded {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name() < groups[j].Name() })

	byTime := map[time.Duration][]alertTestCase{}
	var last time.Duration
	for _, tc := range tg.AlertRuleTest {
		at := time.Duration(tc.EvalTime)
		if at%time.Duration(rt.EvaluationInterval) != 0 {
			t.Fatalf("eval_time %s of %s is not a multiple of the evaluation interval", model.Duration(at), tc.Alertname)
		}
		byTime[at] = append(byTime[at], tc)
		last = max(last, at)
	}

	start := time.Unix(0, 0).UTC()
	for at := time.Duration(0); at <= last; at += time.Duration(rt.EvaluationInterval) {
		for _, g := range groups {
			g.Eval(ctx, start.Add(at))
			for _, r := range g.Rules() {
				if err := r.LastError(); err != nil {
					t.Fatalf("at %s, rule %s: %v", model.Duration(at), r.Name(), err)
				}
			}
		}
		for _, tc := range byTime[at] {
			got := firing(t, groups, tc.Alertname)
			want := expected(tc)
			if !slices.Equal(got, want) {
				t.Errorf("at %s, %s:\n  want %d firing: %s\n  got  %d firing: %s", model.Duration(at), tc.Alertname,
					len(want), strings.Join(want, "\n            "), len(got), strings.Join(got, "\n            "))
			}
		}
	}
}

// firing returns the alerts of the rule named alertname in the firing state
// (not pending), each as its labels and annotations, sorted.
func firing(t *testing.T, groups []*rules.Group, alertname string) []string {
	t.Helper()
	found := false
	var out []string
	for _, g := range groups {
		for _, r := range g.AlertingRules() {
			if r.Name() != alertname {
				continue
			}
			found = true
			for _, a := range r.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out = append(out, describe(a.Labels, a.Annotations))
				}
			}
		}
	}
	if !found {
		t.Fatalf("no alert %s in %s", alertname, rulesFile)
	}
	sort.Strings(out)
	return out
}

func expected(tc alertTestCase) []string {
	var out []string
	for _, a := range tc.ExpAlerts {
		lbls := map[string]string{labels.AlertName: tc.Alertname}
		for k, v := range a.ExpLabels {
			lbls[k] = v
		}
		out = append(out, describe(labels.FromMap(lbls), labels.FromMap(a.ExpAnnotations)))
	}
	sort.Strings(out)
	return out
}

func describe(lbls, annotations labels.Labels) string {
	return lbls.String() + " annotations " + annotations.String()
}
