package confirm

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// Condition is the Confirmed condition a verdict makes at now: True once every probe sent since
// the flip lands as the lever says; False when one does not once the grace after the flip is
// over; Unknown before that, or when nothing is probed. Its messages name no time and no count
// that changes from round to round, so a lever that stays where it is writes nothing.
func Condition(v Verdict, grace time.Duration, now time.Time) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionConfirmed, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNotProbed}
	if len(v.Plan.Probes) == 0 {
		c.Message = "nothing is probed: " + v.Plan.NotProbed
		return c
	}
	also := ""
	if v.Plan.Skipped != "" {
		also = "; " + v.Plan.Skipped
	}
	var failed []int
	answered := 0
	for i, r := range v.Results {
		if r.At.IsZero() {
			continue
		}
		answered++
		if !r.Lands {
			failed = append(failed, i)
		}
	}
	switch {
	case len(failed) == 0 && answered == len(v.Results) && !v.ConfirmedAt.IsZero():
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonDataPlaneAnswers
		c.Message = fmt.Sprintf("the data plane answers as the lever says: %d probe(s) of %d target(s) landed where it sends them%s",
			len(v.Plan.Probes), targets(v.Plan), also)
	case len(failed) > 0 && now.Sub(v.Since) >= grace:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees
		c.Message = "the data plane does not answer as the lever says: " + failure(v, failed[0])
		if more := len(failed) - 1; more > 0 {
			c.Message += fmt.Sprintf(" (and %d more probe(s): see status.targets[].confirmMessage)", more)
		}
	case len(failed) > 0:
		c.Reason = v1alpha1.ReasonConfirming
		c.Message = "within the grace after the flip, the data plane does not answer as the lever says yet: " + failure(v, failed[0])
	default:
		c.Reason = v1alpha1.ReasonConfirming
		c.Message = fmt.Sprintf("probing %d route(s) of %d target(s) through the data plane%s", len(v.Plan.Probes), targets(v.Plan), also)
	}
	return c
}

// failure says which target and probe landed where, and where it should have.
func failure(v Verdict, i int) string {
	p, r := v.Plan.Probes[i], v.Results[i]
	return fmt.Sprintf("%s: %s through %s should be %s, got %s", p.Target, p, p.Address, expectation(p), r.Answer)
}

// TargetMessages are, by target, what its first probe that does not land got ("" for none).
func TargetMessages(v Verdict) map[string]string {
	out := map[string]string{}
	for i, r := range v.Results {
		p := v.Plan.Probes[i]
		if !r.At.IsZero() && !r.Lands && out[p.Target] == "" {
			out[p.Target] = failure(v, i)
		}
	}
	return out
}

func expectation(p Probe) string {
	switch p.Expect {
	case ExpectShed:
		return fmt.Sprintf("shed by this policy (%d from the shed server)", p.Code)
	case ExpectRedirect:
		return "redirected to " + p.Location
	case ExpectEither:
		return fmt.Sprintf("shed by this policy (%d) or admitted", p.Code)
	}
	return "admitted (an answer not from the shed server, and no 5xx, 404 or 421)"
}

func targets(p Plan) int {
	seen := map[string]bool{}
	for _, pr := range p.Probes {
		seen[pr.Target] = true
	}
	return len(seen)
}
