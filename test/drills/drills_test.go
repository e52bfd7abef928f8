// Package drills runs every shipped drill as a test: each starts its own embedded control plane,
// runs the manager on a warped clock and the runbook through the plugin's code.
package drills

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"floodgate.dev/floodgate/internal/drill"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

func TestShippedDrillsPass(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no drills found: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(path, ".yaml"), func(t *testing.T) {
			f, err := drill.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := drill.Run(context.Background(), f, &out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if res.Failed {
				t.Fatalf("drill failed:\n%s", out.String())
			}
			t.Logf("%s: %s wall for %s of drill time", f.Name, res.Wall, res.DrillTime)
		})
	}
}

func TestAFailedExpectationFailsTheDrillAndItsReports(t *testing.T) {
	f, err := drill.Load("testdata/wrong-expectation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := drill.Run(context.Background(), f, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed {
		t.Fatalf("a wrong expectation must fail the drill:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "✗ after 1s: status.phase is Shedding, want Ramping") ||
		!strings.Contains(out.String(), "skip: advance the clock 1m0s") {
		t.Fatalf("the timeline must name the failure and the skipped steps:\n%s", out.String())
	}

	var junit bytes.Buffer
	if err := drill.WriteJUnit(&junit, []*drill.Result{res}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit is not XML: %v\n%s", err, junit.String())
	}
	if s := doc.Suites[0]; s.Failures != 1 || s.Skipped != 1 || s.Tests != 4 {
		t.Fatalf("JUnit counts: %+v\n%s", s, junit.String())
	}
	var md bytes.Buffer
	if err := drill.WriteMarkdown(&md, []*drill.Result{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## A drill whose expectation is wrong — FAIL") {
		t.Fatalf("Markdown report:\n%s", md.String())
	}
}

// TestADrillAcrossClustersNamesTheClusterAnExpectationFailsOn: a step checks every cluster it
// concerns, and a failure says which; the HTML report has a lane per cluster, each showing what
// that cluster admitted.
func TestADrillAcrossClustersNamesTheClusterAnExpectationFailsOn(t *testing.T) {
	f, err := drill.Load("testdata/wrong-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := drill.Run(context.Background(), f, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Failed || !strings.Contains(out.String(), "✗ sin: after 1s: status.phase is Normal, want Shedding") {
		t.Fatalf("the expectation fails on sin, which was not shed, and says so:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "run: kubectl floodgate shed api-gateway -n edge --wait [syd]") ||
		!strings.Contains(out.String(), "syd: ~ TrafficPolicy edge/api-gateway  action: Normal → ShedAll") {
		t.Fatalf("the run names its cluster, and its changes are syd's:\n%s", out.String())
	}
	var page bytes.Buffer
	if err := drill.WriteHTML(&page, []*drill.Result{res}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">admitted in syd</text>", ">admitted in sin</text>", "<title>shed</title>", "<title>100%</title>"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
	if _, err := drill.Load("testdata/unknown-cluster.yaml"); err == nil || !strings.Contains(err.Error(), `names cluster "mel", which is not among the drill's clusters [syd sin]`) {
		t.Errorf("a step naming a cluster the drill does not have is refused at load: %v", err)
	}
}
