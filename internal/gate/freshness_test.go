package gate

import (
	"slices"
	"testing"
	"time"
)

func TestTheInputsOfAQueryAndTheWindowsTheyAreReadOver(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []input
	}{
		{`app_error_ratio`, []input{{`app_error_ratio`, lookback}}},
		{`sum(rate(http_requests_total{code=~"5.."}[2m])) / sum(rate(http_requests_total[5m]))`, []input{
			{`http_requests_total{code=~"5.."}`, 2 * time.Minute}, {`http_requests_total`, 5 * time.Minute}}},
		{`max_over_time(rate(x[1m])[10m:30s])`, []input{{`x`, 11 * time.Minute}}},
		{`histogram_quantile(0.99, sum by (le) (rate(latency_bucket[5m])))`, []input{{`latency_bucket`, 5 * time.Minute}}},
		{`app_error_ratio offset 1h`, nil},
		{`app_error_ratio - app_error_ratio @ 1700000000`, []input{{`app_error_ratio`, lookback}}},
		{`vector(1)`, nil},
	} {
		got, err := inputs(tc.query)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: inputs %v, want %v", tc.query, got, tc.want)
		}
	}
	if _, err := inputs(`app_error_ratio[`); err == nil {
		t.Error("a query that does not parse must say so")
	}
}
