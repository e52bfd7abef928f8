// Package report renders a drill's HTML report in a real browser: headless Chromium (Debian's
// package) loads the page from disk with the network off, and the test reads what it rendered.
package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// chromium runs headless Chromium on a local file, with no network, and returns its stdout and
// its log (where console messages go).
func chromium(t *testing.T, args ...string) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is missing: run hack/ensure-debs.sh chromium=chromium (make test does): %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + t.TempDir()}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func TestTheCanvaDrillsReportRendersInChromiumWithAMarkPerStep(t *testing.T) {
	f, err := drill.Load(filepath.Join("..", "drills", "canva-2024.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := drill.Run(context.Background(), f, &out)
	if err != nil || res.Failed {
		t.Fatalf("the drill failed: %v\n%s", err, out.String())
	}
	var page bytes.Buffer
	if err := drill.WriteHTML(&page, []*drill.Result{res}); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	// Self-contained: nothing is fetched (no scripts, stylesheets, fonts or images from anywhere).
	for _, ref := range []string{"<script", "<link", "@import", "url(http", `src="`, "@font-face"} {
		if strings.Contains(html, ref) {
			t.Errorf("the report is not self-contained: it has %q", ref)
		}
	}
	file := filepath.Join(t.TempDir(), "drill.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	dom, log := chromium(t, "--dump-dom", "file://"+file)
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") || strings.Contains(line, "net::ERR") {
			t.Errorf("the browser reported: %s", line)
		}
	}
	count := func(class string) int {
		return len(regexp.MustCompile(`class="[^"]*\b`+class+`\b`).FindAllStringIndex(dom, -1))
	}
	if got, want := count("step-mark"), len(res.Rows); got != want {
		t.Errorf("%d step marks in the rendered SVG, want one per step (%d)", got, want)
	}
	expects := 0
	for _, row := range res.Rows {
		if row.Kind == "expect" {
			expects++
		}
	}
	if got := count("expect-pass"); got != expects {
		t.Errorf("%d passing expectation marks, want %d", got, expects)
	}
	if got := count("armed-true"); got < 1 {
		t.Errorf("no mark says the levers are armed (Armed True)")
	}
	if got := count("armed-false"); got != 0 {
		t.Errorf("%d marks say a lever is refused; the Canva drill's levers are all accepted", got)
	}
	// The drill runs on no data plane and its manager has no probe key: the confirmation lane
	// says, at each change, that nothing is confirmed and why.
	if got := count("confirmed-unknown"); got < 2 || !strings.Contains(dom, "Confirmed Unknown: nothing is probed: the manager has no probe key") {
		t.Errorf("%d marks of an unconfirmed lever, want one before the first lever and one after it, saying why", got)
	}
	if got := count("confirmed-true") + count("confirmed-false"); got != 0 {
		t.Errorf("%d marks say a lever is confirmed or not on a drill without a data plane", got)
	}
	if got := count("flip-mark"); got != 2 {
		t.Errorf("%d flips marked, want 2 (ShedAll, Ramp)", got)
	}
	for _, want := range []string{"AU, NZ, SG", "50%", "shed", "50/s per client", "500/s per client", "1.5M req/s herd"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered report does not show %q", want)
		}
	}

	png := filepath.Join(t.TempDir(), "drill.png")
	chromium(t, "--window-size=1220,800", "--screenshot="+png, "file://"+file)
	if b, err := os.ReadFile(png); err != nil || len(b) < 10000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no screenshot: %d bytes, %v", len(b), err)
	}
	if dest := os.Getenv("REPORT_PNG"); dest != "" {
		// make docs-report: the picture in docs/ and the README.
		b, _ := os.ReadFile(png)
		if err := os.WriteFile(dest, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
