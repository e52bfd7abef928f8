package gate

import (
	"context"
	"fmt"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// lookback is how far back Prometheus looks for an instant selector's sample (its default
// --query.lookback-delta).
const lookback = 5 * time.Minute

// input is a series selector a query reads, with the window of samples it reads: its range,
// plus any enclosing subquery's; the lookback for an instant selector.
type input struct {
	selector string
	window   time.Duration
}

// inputs lists the series selectors of a PromQL query. A selector with an offset or an @ (or
// under a subquery with one) asks for old samples on purpose and is left out.
func inputs(query string) ([]input, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return nil, err
	}
	var out []input
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || vs.OriginalOffset != 0 || vs.Timestamp != nil || vs.StartOrEnd != 0 {
			return nil
		}
		window := lookback
		if len(path) > 0 {
			if m, ok := path[len(path)-1].(*parser.MatrixSelector); ok && m.Range > 0 {
				window = m.Range
			}
		}
		for _, p := range path {
			if sq, ok := p.(*parser.SubqueryExpr); ok {
				if sq.OriginalOffset != 0 || sq.Timestamp != nil || sq.StartOrEnd != 0 {
					return nil
				}
				window += sq.Range
			}
		}
		out = append(out, input{selector: vs.String(), window: window})
		return nil
	})
	return out, nil
}

// staleInput says which input of the query stopped reporting, judged at Prometheus's own
// evaluation time at (drills warp the controller's clock; Prometheus lives in real time): an
// input whose newest sample is older than maxAge, or that has samples in the window the query
// reads but none now — a rate over the last 5 minutes still answers for 5 minutes after its
// exporter died. An input with no samples at all is left to the query, which says what missing
// means (`or vector(0)`). "" when every input is fresh.
func staleInput(ctx context.Context, api promv1.API, ins []input, at time.Time, maxAge time.Duration) (string, error) {
	for _, in := range ins {
		newest, found, err := queryOne(ctx, api, "max(timestamp("+in.selector+"))", at)
		if err != nil {
			return "", fmt.Errorf("querying the age of %s: %w", in.selector, err)
		}
		if found {
			if old := tooOld(newest, at, maxAge); old != "" {
				return fmt.Sprintf("the newest sample of %s is %s", in.selector, old), nil
			}
			continue
		}
		_, before, err := queryOne(ctx, api, fmt.Sprintf("count(count_over_time(%s[%s]))", in.selector, model.Duration(in.window)), at)
		if err != nil {
			return "", fmt.Errorf("querying the age of %s: %w", in.selector, err)
		}
		if before {
			return fmt.Sprintf("%s stopped reporting: it has samples in the last %s the query reads, none now", in.selector, model.Duration(in.window)), nil
		}
	}
	return "", nil
}

// queryOne runs a query and returns its single value, if it has one.
func queryOne(ctx context.Context, api promv1.API, query string, at time.Time) (float64, bool, error) {
	v, _, _, err := api.Query(ctx, query, at)
	if err != nil {
		return 0, false, err
	}
	value, _, _, why := single(v)
	return value, why == "", nil
}

// tooOld says how old a sample taken at unix seconds is when that is more than maxAge at the
// evaluation time at ("" when it is not).
func tooOld(seconds float64, at time.Time, maxAge time.Duration) string {
	if age := at.Sub(time.Unix(0, int64(seconds*float64(time.Second)))); age > maxAge {
		return fmt.Sprintf("%s old (maxAge %s)", age.Round(time.Second), maxAge)
	}
	return ""
}
