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
