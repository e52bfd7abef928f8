package core

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
)

// Outcome is what one reconcile found and did, the input of the condition functions.
type Outcome struct {
	Phase v1alpha1.Phase
	// Held is true when a ramp holds where it is because the step the plan asks for cannot be
	// applied to every target and autoscaler (Problems say why): nothing was written.
	Held bool
	// Problems are what keeps the lever in force from some objects: each is reported on its
	// object, and (unless Held) every other object has the lever.
	Problems []provider.Problem
	// Leftovers are problems putting back objects the spec no longer names; the plan was
	// applied to the objects it does name.
	Leftovers []provider.Problem
	// ApplyErr is a failure while writing (retried).
	ApplyErr error
	// KeptOthers are fields someone else changed after Floodgate; they keep the other value.
	KeptOthers []string
	// ShedEndpoints is the number of ready shed endpoints, or -1 when nothing is shed.
	ShedEndpoints int
	// ShedDraining is the number of shed endpoints terminating but still serving.
	ShedDraining int
	// UnknownGate says which gate has no trustworthy reading and why ("" when none).
	UnknownGate string
	// StaleFor is staleAfter, when the lever has been pulled longer than that ("" otherwise).
	StaleFor string
	// Unsupported names what targets cannot take, per step ("step 2 on Ingress x: ...").
	Unsupported []string
	// AnswerProblems keep the policy's shed answer from being its own (a route claimed from
	// another namespace, a redirect the cluster does not allow); the lever is applied.
	AnswerProblems []provider.Problem
}

// SetConditions sets Ready, Progressing, Degraded, RampComplete, GateUnknown, LeverStale and
// StepUnsupported on the policy's status.
func SetConditions(p *v1alpha1.TrafficPolicy, o Outcome) {
	for _, c := range []metav1.Condition{readyCondition(o), progressingCondition(o), degradedCondition(o), rampCompleteCondition(o),
		gateUnknownCondition(o), leverStaleCondition(o), stepUnsupportedCondition(o)} {
		c.ObservedGeneration = p.Generation
		meta.SetStatusCondition(&p.Status.Conditions, c)
	}
}

func readyCondition(o Outcome) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady}
	switch {
	case o.Held:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, o.Problems[0].Reason, "the ramp holds: its next step cannot be applied everywhere: "+o.Problems[0].Message
	case len(o.Problems) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, o.Problems[0].Reason
		c.Message = fmt.Sprintf("phase %s is applied to every object but: %s", o.Phase, o.Problems[0].Message)
	case o.ApplyErr != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "applying the policy failed; retrying"
	case o.Phase == v1alpha1.PhaseRestoring:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonPending, "restoring the targets' originals"
	case o.ShedEndpoints == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonNoShedBackend, noShedBackend(o.ShedDraining)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonApplied, fmt.Sprintf("phase %s is applied to every target", o.Phase)
	}
	return c
}

// noShedBackend says what a shed backend without ready endpoints means for the lever, on each
// data plane: draining endpoints are terminating but still serving.
func noShedBackend(draining int) string {
	msg := "not shedding: the shed backend has no ready endpoints, and ingress-nginx (and Traefik's NGINX provider) " +
		"skips a canary whose backend has none, so requests still reach the main backend; a gateway answers a shed rule " +
		"whose backend has none with its own 5xx and no Retry-After"
	if draining > 0 {
		msg += fmt.Sprintf("; %d terminating shed endpoint(s) still serve: Envoy sends to them until they go, Traefik "+
			"does not (it answers 503 itself, on an Ingress too)", draining)
	}
	return msg + "; check the floodgate-shed Deployment in the shed namespace"
}

func progressingCondition(o Outcome) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonIdle, Message: "no ramp or release under way"}
	if o.Held {
		c.Reason, c.Message = v1alpha1.ReasonRampHeld, "the ramp holds where it is until its next step can be applied to every target and autoscaler (see Ready)"
		return c
	}
	switch o.Phase {
	case v1alpha1.PhaseRamping:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonRampStep, "a ramp step is in force; the ramp moves on when its hold ends and its gates pass"
	case v1alpha1.PhaseReleasing:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonReleasing, "traffic is full; the autoscaler hold is released when releaseAfter ends"
	case v1alpha1.PhaseShedding:
		c.Reason, c.Message = v1alpha1.ReasonShedding, "every request is shed until the action changes"
	}
	return c
}

func degradedCondition(o Outcome) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonHealthy, Message: "nothing keeps the policy from being applied"}
	// A gateway that has not reported on a change yet is a change under way, not a fault.
	problems := slices.DeleteFunc(slices.Clone(o.Problems), provider.Awaiting)
	switch {
	case len(problems) > 0:
		msgs := make([]string, 0, len(problems))
		for _, p := range problems {
			msgs = append(msgs, p.Message)
		}
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, problems[0].Reason, strings.Join(msgs, "; ")
	case o.ApplyErr != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonApplyFailed, o.ApplyErr.Error()
	case len(o.Leftovers) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, o.Leftovers[0].Reason
		c.Message = "an object the spec no longer names cannot be put back: " + o.Leftovers[0].Message
	case len(o.AnswerProblems) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, o.AnswerProblems[0].Reason
		msgs := make([]string, 0, len(o.AnswerProblems))
		for _, p := range o.AnswerProblems {
			msgs = append(msgs, p.Message)
		}
		c.Message = strings.Join(msgs, "; ")
	case len(o.KeptOthers) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonFieldChanged
		c.Message = "changed by someone else after Floodgate, kept as they are: " + strings.Join(o.KeptOthers, ", ")
	case o.ShedEndpoints == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoShedBackend, noShedBackend(o.ShedDraining)
	}
	return c
}

func stepUnsupportedCondition(o Outcome) metav1.Condition {
	if len(o.Unsupported) == 0 {
		return metav1.Condition{Type: v1alpha1.ConditionStepUnsupported, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonAllSupported,
			Message: "every target can take every step of the policy"}
	}
	msg := o.Unsupported[0]
	if more := len(o.Unsupported) - 1; more > 0 {
		msg += fmt.Sprintf(" (and %d more: see status.targets[].unsupported)", more)
	}
	return metav1.Condition{Type: v1alpha1.ConditionStepUnsupported, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonUnsupported, Message: msg}
}

func rampCompleteCondition(o Outcome) metav1.Condition {
	if o.Phase == v1alpha1.PhaseCompleted {
		return metav1.Condition{Type: v1alpha1.ConditionRampComplete, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonRampComplete,
			Message: "the ramp ran to its end; traffic is full and every target is back to its original"}
	}
	return metav1.Condition{Type: v1alpha1.ConditionRampComplete, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonRampNotComplete,
		Message: "no ramp has completed since the action last changed"}
}

func gateUnknownCondition(o Outcome) metav1.Condition {
	if o.UnknownGate != "" && o.Phase == v1alpha1.PhaseRamping {
		return metav1.Condition{Type: v1alpha1.ConditionGateUnknown, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonGatesHolding,
			Message: "the ramp holds: " + o.UnknownGate}
	}
	return metav1.Condition{Type: v1alpha1.ConditionGateUnknown, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonGatesTrusted,
		Message: "every gate has a trustworthy reading, or none is in force"}
}

func leverStaleCondition(o Outcome) metav1.Condition {
	if o.StaleFor != "" {
		return metav1.Condition{Type: v1alpha1.ConditionLeverStale, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonLeverStale,
			Message: "the lever has not been back to Normal for longer than " + o.StaleFor + ": release it or say why it stays"}
	}
	return metav1.Condition{Type: v1alpha1.ConditionLeverStale, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonLeverFresh,
		Message: "the lever is at rest or was pulled recently"}
}

// AppendHistory adds transitions, keeping the last MaxHistory.
func AppendHistory(h []v1alpha1.Transition, ts ...v1alpha1.Transition) []v1alpha1.Transition {
	h = append(h, ts...)
	if n := len(h) - v1alpha1.MaxHistory; n > 0 {
		h = append([]v1alpha1.Transition(nil), h[n:]...)
	}
	return h
}
