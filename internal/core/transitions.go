package core

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// transitions says what changed in this plan, for the policy's history and Events: a changed
// action, a new step, a pause, an approval awaited, full traffic, a release, an expired lever,
// or a request handled.
func transitions(st v1alpha1.TrafficPolicyStatus, p Plan, action v1alpha1.Action, actionChanged bool, now metav1.Time, req *Request) []v1alpha1.Transition {
	step := int32(0)
	if p.Ramp != nil && action == v1alpha1.ActionRamp {
		step = p.Ramp.Step
	}
	prevStep := int32(0)
	if st.Ramp != nil && st.ObservedAction == v1alpha1.ActionRamp {
		prevStep = st.Ramp.Step
	}
	awaiting := p.Ramp != nil && p.Ramp.AwaitingApproval && (st.Ramp == nil || !st.Ramp.AwaitingApproval)
	changed := actionChanged || p.Phase != st.Phase || step != prevStep || awaiting
	newlyExpired := newlyExpiredLever(st, p)
	if !changed && req == nil && newlyExpired == "" {
		return nil
	}
	t := v1alpha1.Transition{Time: now, Phase: p.Phase, Step: step, Action: action}
	verb := ""
	if req != nil {
		verb = req.Verb
		t.By, t.Note = req.By, req.Reason
	}
	gateShed := p.Ramp != nil && p.Ramp.ShedByGate != "" && (st.Ramp == nil || st.Ramp.ShedByGate == "")
	switch {
	case newlyExpired != "":
		t.Reason, t.Message = "LeverExpired", fmt.Sprintf("%s expired (its expiry time passed); now acting as action %s", newlyExpired, action)
	case actionChanged:
		t.Reason, t.Message = "ActionChanged", fmt.Sprintf("action is now %s", action)
	case gateShed:
		t.Reason, t.Message = v1alpha1.ReasonGateFailed, fmt.Sprintf("gate %s failed: every request is shed (onGateFailure ShedAll) until the action changes", p.Ramp.ShedByGate)
	case step < prevStep && verb == "":
		t.Reason, t.Message = v1alpha1.ReasonGateFailed, fmt.Sprintf("a gate failed: ramp stepped back to step %d of %d (onGateFailure StepBack)", step, p.Ramp.Steps)
	case step < prevStep:
		t.Reason, t.Message = "StepBack", fmt.Sprintf("ramp stepped back to step %d of %d", step, p.Ramp.Steps)
	case p.Phase == v1alpha1.PhasePaused && st.Phase != v1alpha1.PhasePaused:
		t.Reason, t.Message = "Paused", fmt.Sprintf("ramp paused at step %d of %d", step, p.Ramp.Steps)
	case st.Phase == v1alpha1.PhasePaused && p.Phase == v1alpha1.PhaseRamping && step == prevStep:
		t.Reason, t.Message = "Resumed", fmt.Sprintf("ramp resumed at step %d of %d", step, p.Ramp.Steps)
	case awaiting && step == prevStep:
		t.Reason, t.Message = "AwaitingApproval", fmt.Sprintf("step %d of %d has held long enough and waits for an approve", step, p.Ramp.Steps)
	case step != prevStep && (p.Phase == v1alpha1.PhaseRamping || p.Phase == v1alpha1.PhasePaused):
		t.Reason, t.Message = "StepAdvanced", fmt.Sprintf("ramp step %d of %d in force", step, p.Ramp.Steps)
		if verb == VerbApprove {
			t.Reason = "Approved"
		}
	case p.Phase == v1alpha1.PhaseReleasing && st.Phase != v1alpha1.PhaseReleasing:
		t.Reason, t.Message = "FullTraffic", "traffic is full; autoscaler hold kept until its release time"
	case p.Phase == v1alpha1.PhaseCompleted && st.Phase != v1alpha1.PhaseCompleted:
		t.Reason, t.Message = "RampComplete", "ramp complete; traffic is full and autoscalers are released"
	case p.Phase != st.Phase:
		t.Reason, t.Message = "HoldReleased", fmt.Sprintf("autoscaler hold released; phase %s", p.Phase)
	case verb == VerbNext || verb == VerbBack || verb == VerbApprove:
		t.Reason, t.Message = "RequestIgnored", fmt.Sprintf("%s does nothing in phase %s", verb, p.Phase)
	default:
		t.Reason, t.Message = "RequestHandled", fmt.Sprintf("%s recorded", verb)
	}
	return []v1alpha1.Transition{t}
}

// newlyExpiredLever names a lever that expired in this plan ("" when none).
func newlyExpiredLever(st v1alpha1.TrafficPolicyStatus, p Plan) string {
	for _, l := range p.ExpiredLevers {
		if !slices.Contains(st.ExpiredLevers, l) {
			return l
		}
	}
	return ""
}
