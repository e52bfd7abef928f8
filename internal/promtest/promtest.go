// Package promtest runs a real Prometheus (Debian's package) on loopback for tests: the gate
// tests read it as a gate would, and the dashboard test runs every panel's query against it.
package promtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Server is a real Prometheus on loopback, scraping its targets every second.
type Server struct {
	dir, addr string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Start starts Prometheus scraping the targets (host:port) every second, and waits until it is
// ready.
func Start(targets ...string) (*Server, error) {
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
	quoted, _ := json.Marshal(targets)
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: app
  static_configs: [{targets: %s}]
`, quoted)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		return nil, err
	}
	p := &Server{dir: dir, addr: addr}
	return p, p.Restart()
}

// Restart starts the Prometheus process again (after Stop), on the same address and data.
func (p *Server) Restart() error {
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

// Stop stops the Prometheus process (its data stays until Close).
func (p *Server) Stop() {
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

// Close stops Prometheus and removes its data.
func (p *Server) Close() {
	p.Stop()
	_ = os.RemoveAll(p.dir)
}

// URL is Prometheus's base URL.
func (p *Server) URL() string { return "http://" + p.addr }

// Query runs an instant query and returns the raw JSON answer.
func (p *Server) Query(query string) (string, error) {
	return p.get("/api/v1/query?query=" + url.QueryEscape(query))
}

// QueryRange runs a range query over [start, end] at step, and returns how many series answered
// and the raw JSON answer.
func (p *Server) QueryRange(query string, start, end time.Time, step time.Duration) (int, string, error) {
	body, err := p.get(fmt.Sprintf("/api/v1/query_range?query=%s&start=%s&end=%s&step=%s", url.QueryEscape(query),
		strconv.FormatInt(start.Unix(), 10), strconv.FormatInt(end.Unix(), 10), strconv.Itoa(int(step.Seconds()))))
	if err != nil {
		return 0, body, err
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		return 0, body, err
	}
	if answer.Status != "success" {
		return 0, body, fmt.Errorf("prometheus: %s", answer.Error)
	}
	return len(answer.Data.Result), body, nil
}

func (p *Server) get(path string) (string, error) {
	res, err := http.Get(p.URL() + path)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return string(body), err
}
