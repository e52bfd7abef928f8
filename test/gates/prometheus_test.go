// Package gates tests the ramp's health gates against real parts: a real Prometheus (Debian's
// package, started here on loopback) scraping an exporter the test controls, a real local HTTP
// server for webhooks, and the manager on the real clock with holds of seconds.
package gates

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// exporter serves /metrics with exposition text the test sets.
type exporter struct {
	mu   sync.Mutex
	text string
	srv  *httptest.Server
}

func newExporter() *exporter {
	e := &exporter{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, e.text)
	}))
	return e
}

func (e *exporter) set(text string) {
	e.mu.Lock()
	e.text = text
	e.mu.Unlock()
}

// prometheusServer is a real Prometheus on loopback, scraping the exporter every second.
type prometheusServer struct {
	dir, addr string
	cmd       *exec.Cmd
	done      chan struct{}
}

func startPrometheus(exporterAddr string) (*prometheusServer, error) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		return nil, fmt.Errorf("prometheus is missing: run hack/ensure-debs.sh prometheus=prometheus (make test does): %w", err)
	}
	dir, err := os.MkdirTemp("", "floodgate-prometheus")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: app
  static_configs: [{targets: ['%s']}]
`, exporterAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	p := &prometheusServer{dir: dir, addr: addr}
	return p, p.start()
}

func (p *prometheusServer) start() error {
	p.cmd = exec.Command("prometheus",
		"--config.file="+filepath.Join(p.dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+p.addr,
		"--log.level=warn")
	logFile, err := os.Create(filepath.Join(p.dir, "prometheus.log"))
	if err != nil {
		return err
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting prometheus: %w", err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); _ = logFile.Close(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(p.URL() + "/-/ready")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
	return fmt.Errorf("prometheus did not become ready:\n%s", log)
}

func (p *prometheusServer) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (p *prometheusServer) URL() string { return "http://" + p.addr }

// waitForValue waits until Prometheus has scraped the metric with the given value.
func (p *prometheusServer) waitForValue(t *testing.T, metric, value string) {
	t.Helper()
	p.waitFor(t, metric, func(body string) bool { return strings.Contains(body, `"`+value+`"`) },
		"prometheus never scraped "+metric+"="+value)
}

// waitForAbsent waits until the metric has no current sample (Prometheus marked it stale).
func (p *prometheusServer) waitForAbsent(t *testing.T, metric string) {
	t.Helper()
	p.waitFor(t, metric, func(body string) bool { return strings.Contains(body, `"result":[]`) },
		"prometheus never marked "+metric+" stale")
}

func (p *prometheusServer) waitFor(t *testing.T, query string, ok func(body string) bool, failure string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(p.URL() + "/api/v1/query?query=" + url.QueryEscape(query))
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if ok(string(body)) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(failure)
}
