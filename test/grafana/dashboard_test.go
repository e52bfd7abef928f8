// Package grafana checks the Grafana dashboard Floodgate ships (config/grafana/floodgate.json)
// against the real thing: every query parses with Prometheus's own PromQL parser, names only
// metrics and labels the manager's /metrics serves, and returns data from a real Prometheus
// (Debian's package) that scraped a manager through a short drill.
package grafana

import (
	"bytes"
	"context"
	"encoding/json"

	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	ctrl "sigs.k8s.io/controller-runtime"

	"floodgate.dev/floodgate/internal/drill"
	"floodgate.dev/floodgate/internal/promtest"
)

// DashboardFile is the dashboard, as shipped in config/ and in the Helm chart.
var DashboardFile = filepath.Join("..", "..", "config", "grafana", "floodgate.json")

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// query is one PromQL query of the dashboard, where it is.
type query struct{ where, expr string }

func queries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(DashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var out []query
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Fatalf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			out = append(out, query{"panel " + p.Title, target.Expr})
		}
	}
	for _, v := range d.Templating.List {
		// label_values(SELECTOR, LABEL) is Grafana's: its selector is PromQL.
		if def, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			out = append(out, query{"variable " + v.Name, def[:strings.LastIndex(def, ",")]})
		}
	}
	return out
}

// concrete is a query as Grafana sends it with every namespace and policy selected.
func concrete(expr string) string {
	return strings.NewReplacer(`$namespace`, `.*`, `$policy`, `.*`, `$__rate_interval`, `30s`, `$__range`, `1m`).Replace(expr)
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func TestEveryQueryParsesNamesServedMetricsAndReturnsDataDuringADrill(t *testing.T) {
	qs := queries(t)
	parsed := map[string]parser.Expr{}
	for _, q := range qs {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(concrete(q.expr))
		if err != nil {
			t.Fatalf("%s: %q does not parse: %v", q.where, q.expr, err)
		}
		parsed[q.expr] = e
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	_ = l.Close()
	prom, err := promtest.Start(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Close()

	f, err := drill.Load(filepath.Join("testdata", "short-drill.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// The manager's /metrics, read while the drill runs: the fullest answer is kept.
	var mu sync.Mutex
	var served map[string]*dto.MetricFamily
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if families, err := scrape(metricsAddr); err == nil {
				mu.Lock()
				if len(families) >= len(served) {
					served = families
				}
				mu.Unlock()
			}
		}
	}()
	var out bytes.Buffer
	res, err := drill.RunWith(context.Background(), f, &out, drill.Options{MetricsAddr: metricsAddr, Linger: 3 * time.Second})
	close(stop)
	<-scraped
	if err != nil || res.Failed {
		t.Fatalf("the drill failed: %v\n%s", err, out.String())
	}

	for _, q := range qs {
		for _, sel := range selectors(parsed[q.expr]) {
			name, family := familyOf(sel, served)
			if family == nil {
				t.Errorf("%s: metric %s is not in the manager's /metrics", q.where, name)
				continue
			}
			for _, m := range sel.LabelMatchers {
				if m.Name != labels.MetricName && !hasLabel(family, m.Name) {
					t.Errorf("%s: metric %s has no label %q", q.where, name, m.Name)
				}
			}
		}
	}
	for _, q := range qs {
		if !strings.HasPrefix(q.where, "panel ") {
			continue
		}
		n, body, err := prom.QueryRange(concrete(q.expr), began.Add(-time.Minute), time.Now(), time.Second)
		if err != nil || n == 0 {
			t.Errorf("%s: %q returned no data from Prometheus (%v): %s", q.where, q.expr, err, body)
		}
	}
}

// scrape reads the manager's /metrics.
func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

func selectors(e parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// familyOf is the metric family a selector reads (a histogram's _bucket, _sum and _count are
// its family's).
func familyOf(sel *parser.VectorSelector, served map[string]*dto.MetricFamily) (string, *dto.MetricFamily) {
	name := sel.Name
	if f, ok := served[name]; ok {
		return name, f
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := served[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
				return name, f
			}
		}
	}
	return name, nil
}

func hasLabel(f *dto.MetricFamily, name string) bool {
	if name == "le" && f.GetType() == dto.MetricType_HISTOGRAM {
		return true
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return true
			}
		}
	}
	return false
}
