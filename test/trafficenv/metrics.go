package trafficenv

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ShedAnswers is how many answers the shed server whose health listener is at addr counted for a
// policy ("namespace/name"), a target host and a status code (floodgate_shed_responses_total;
// 0 before the first).
func ShedAnswers(addr, policy, host string, code int) (float64, error) {
	return shedCount(addr, "floodgate_shed_responses_total", policy, host, code)
}

// ShedProbeAnswers is how many of the manager's probes the shed server at addr answered for the
// policy, host and code (floodgate_shed_probe_responses_total).
func ShedProbeAnswers(addr, policy, host string, code int) (float64, error) {
	return shedCount(addr, "floodgate_shed_probe_responses_total", policy, host, code)
}

func shedCount(addr, metric, policy, host string, code int) (float64, error) {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", addr, res.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return 0, fmt.Errorf("reading %s/metrics: %w", addr, err)
	}
	for _, m := range families[metric].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["policy"] == policy && labels["host"] == host && labels["code"] == strconv.Itoa(code) {
			return m.GetCounter().GetValue(), nil
		}
	}
	return 0, nil
}
