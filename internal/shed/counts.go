package shed

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CountKey is what the shed server counts its answers by: the policy that answered
// ("namespace/name"; "" for the neutral answer), the host of the route it answered for (as the
// target names it: "api.example.com", "*.example.com", "" for a catch-all or no route), and the
// status code.
type CountKey struct {
	Policy, Host string
	Code         int
}

// MaxCountKeys bounds how many keys the shed server counts by (a policy's hosts are its targets'):
// answers of keys past it are counted under their policy and code with Host OtherHosts.
const MaxCountKeys = 10_000

// OtherHosts is the host of the answers counted past MaxCountKeys.
const OtherHosts = "(other)"

// Counts are the shed server's answers, per policy, target host and status code: the evidence
// that a lever's requests reach the shed server, exported as floodgate_shed_responses_total. A
// request is counted with one atomic add on a counter its route holds (Server.SetTable hands
// each route its counter; counters outlive the tables).
type Counts struct {
	mu sync.Mutex
	m  map[CountKey]*atomic.Uint64
	// desc is the metric they are exported as (nil: floodgate_shed_responses_total).
	desc *prometheus.Desc
}

// counter is key's counter, made on first use.
func (c *Counts) counter(key CountKey) *atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.m[key]; ok {
		return n
	}
	if c.m == nil {
		c.m = map[CountKey]*atomic.Uint64{}
	}
	if len(c.m) >= MaxCountKeys {
		key.Host = OtherHosts
		if n, ok := c.m[key]; ok {
			return n
		}
	}
	n := &atomic.Uint64{}
	c.m[key] = n
	return n
}

// Snapshot is every count now.
func (c *Counts) Snapshot() map[CountKey]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[CountKey]uint64, len(c.m))
	for k, n := range c.m {
		out[k] = n.Load()
	}
	return out
}

var responsesDesc = prometheus.NewDesc("floodgate_shed_responses_total",
	"Shed answers the shed server gave, by the policy that answered (namespace/name; empty: the neutral answer), the target host it answered for, and the status code.",
	[]string{"policy", "host", "code"}, nil)

var probesDesc = prometheus.NewDesc("floodgate_shed_probe_responses_total",
	"Answers the shed server gave to the manager's probes (requests carrying the token of the policy that answered them), by that policy, the target host and the status code. Never counted in floodgate_shed_responses_total.",
	[]string{"policy", "host", "code"}, nil)

func (c *Counts) metric() *prometheus.Desc {
	if c.desc == nil {
		return responsesDesc
	}
	return c.desc
}

// Describe is the counts' one metric.
func (c *Counts) Describe(ch chan<- *prometheus.Desc) { ch <- c.metric() }

// Collect exports every count.
func (c *Counts) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.Snapshot() {
		ch <- prometheus.MustNewConstMetric(c.metric(), prometheus.CounterValue, float64(n), k.Policy, k.Host, strconv.Itoa(k.Code))
	}
}

// MetricsHandler serves the server's counts (and the Go runtime's) in Prometheus's text format.
func MetricsHandler(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Counts, s.Probes, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
