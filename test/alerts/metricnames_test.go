// Package alerts tests the Prometheus alert rules and the Grafana dashboard
// shipped in charts/kubehook/files: the rules are evaluated on synthetic
// series, and every metric either queries must be one internal/metrics
// defines, so renaming a metric breaks these tests rather than the alerts.
package alerts

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

const (
	filesDir   = "../../charts/kubehook/files"
	metricsDir = "../../internal/metrics"
)

// definedMetrics returns the metric names internal/metrics defines, read
// from its source (the Name of every prometheus.*Opts literal): a vector
// with no series yet is defined too, though a registry would not show it.
// Histograms come with their _bucket, _sum and _count series.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(metricsDir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, filepath.Join(metricsDir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			for _, elt := range lit.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if key, _ := kv.Key.(*ast.Ident); !ok || key == nil || key.Name != "Name" {
					continue
				}
				val, ok := kv.Value.(*ast.BasicLit)
				if !ok || val.Kind != token.STRING {
					t.Fatalf("%s: a metric Name that is not a string literal", fset.Position(kv.Pos()))
				}
				name, err := strconv.Unquote(val.Value)
				if err != nil {
					t.Fatal(err)
				}
				names[name] = true
				if sel.Sel.Name == "HistogramOpts" {
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						names[name+suffix] = true
					}
				}
			}
			return true
		})
	}
	if len(names) == 0 {
		t.Fatalf("no metric definitions found in %s", metricsDir)
	}
	return names
}

// promqlParser parses expressions as Prometheus does by default.
var promqlParser = parser.NewParser(parser.Options{})

// queriedMetrics returns the metric names expr selects.
func queriedMetrics(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%q: a selector without a metric name", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// checkMetricsDefined fails for every metric expr queries that
// internal/metrics does not define.
func checkMetricsDefined(t *testing.T, where, expr string, defined map[string]bool) []string {
	t.Helper()
	names := queriedMetrics(t, expr)
	for _, name := range names {
		if !defined[name] {
			t.Errorf("%s queries %s, which internal/metrics does not define", where, name)
		}
	}
	return names
}
