package alerts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const dashboardFile = "kubehook-dashboard.json"

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	// Panels of a collapsed row.
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// grafanaVariables are replaced by a duration so that expressions parse as
// PromQL; other variables only occur inside label matchers' strings.
var grafanaVariables = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)

// labelValues is Grafana's variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// The dashboard is valid JSON, queries Prometheus through the ${datasource}
// variable, every expression parses, and every metric it queries is one
// internal/metrics defines; it covers each part of delivery health.
func TestDashboardQueriesKubehookMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(filesDir, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: both are needed", d.Title, d.UID)
	}
	defined := definedMetrics(t)
	queried := map[string]bool{}

	hasDatasource := false
	for _, v := range d.Templating.List {
		switch {
		case v.Name == "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || v.Type != "datasource" || q != "prometheus" {
				t.Errorf("variable datasource: type %q query %s, want a datasource variable of Prometheus data sources", v.Type, v.Query)
			}
			hasDatasource = true
		case v.Type == "query":
			checkDatasource(t, "variable "+v.Name, v.Datasource)
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
			m := labelValues.FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("variable %s: query %q is not label_values(<kubehook metric>, <label>)", v.Name, q.Query)
				continue
			}
			if !defined[m[1]] {
				t.Errorf("variable %s queries %s, which internal/metrics does not define", v.Name, m[1])
			}
		}
	}
	if !hasDatasource {
		t.Error("no datasource variable: the dashboard would be tied to one Prometheus")
	}

	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			where := "panel " + p.Title
			checkDatasource(t, where, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			for _, target := range p.Targets {
				checkDatasource(t, where, target.Datasource)
				expr := grafanaVariables.ReplaceAllString(target.Expr, "5m")
				for _, name := range checkMetricsDefined(t, where, expr, defined) {
					queried[name] = true
				}
			}
		}
	}
	walk(d.Panels)

	for _, want := range []string{
		"kubehook_deliveries_total",
		"kubehook_delivery_duration_seconds_bucket",
		"kubehook_queue_pending",
		"kubehook_queue_oldest_delivery_age_seconds",
		"kubehook_queue_up",
		"kubehook_dead_letters",
		"kubehook_dead_letters_total",
		"kubehook_subscriptions",
		"kubehook_circuit_breaker_state",
		"kubehook_queue_consumer_errors_total",
		"kubehook_subscription_deliveries_total",
	} {
		if !queried[want] {
			t.Errorf("no panel queries %s", want)
		}
	}
}

func checkDatasource(t *testing.T, where string, ds *datasourceRef) {
	t.Helper()
	if ds == nil || ds.UID != "${datasource}" || !strings.EqualFold(ds.Type, "prometheus") {
		t.Errorf("%s: data source %+v, want the Prometheus ${datasource} variable", where, ds)
	}
}
