package core

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// Arming is what the API server said of a policy's levers in a dry run, for the Armed condition.
type Arming struct {
	// Judged is false until a verdict is in.
	Judged bool
	// Levers are the levers judged, in order.
	Levers []string
	// Targets and Autoscalers count the objects that exist and took the levers.
	Targets, Autoscalers int
	// Refusals are the refused writes, in lever order: "ShedAll on Ingress api: <the API
	// server's message>".
	Refusals []string
}

// ArmedCondition reports whether the API server accepted every lever (Armed). Its messages hold
// no counts that change without a change of the policy's objects, so an unchanged verdict writes
// nothing.
func ArmedCondition(a Arming) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionArmed}
	switch {
	case !a.Judged:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonArming
		c.Message = "the levers have not been judged by the API server yet"
	case len(a.Refusals) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonLeverRefused
		c.Message = "the API server refuses, in a dry run, " + a.Refusals[0]
		if more := len(a.Refusals) - 1; more > 0 {
			c.Message += fmt.Sprintf(" (and %d more: kubectl floodgate status)", more)
		}
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonLeversAccepted
		c.Message = fmt.Sprintf("the API server accepts, in a dry run, every lever (%s) for %s and %s",
			strings.Join(a.Levers, ", "), count(a.Targets, "target"), count(a.Autoscalers, "autoscaler"))
	}
	return c
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
