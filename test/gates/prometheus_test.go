// Package gates tests the ramp's health gates against real parts: a real Prometheus (Debian's
// package, started here on loopback) scraping an exporter the test controls, a real local HTTP
// server for webhooks, and the manager on the real clock with holds of seconds.
package gates

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"floodgate.dev/floodgate/internal/promtest"
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

// prometheusServer is the real Prometheus the gates read.
type prometheusServer struct{ *promtest.Server }

func startPrometheus(exporterAddr string) (*prometheusServer, error) {
	s, err := promtest.Start(exporterAddr)
	if err != nil {
		return nil, err
	}
	return &prometheusServer{s}, nil
}

func (p *prometheusServer) stop()        { p.Stop() }
func (p *prometheusServer) start() error { return p.Restart() }

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
		if body, err := p.Query(query); err == nil && ok(body) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(failure)
}
