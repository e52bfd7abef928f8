package core

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// FuzzRequestAnnotation: whatever a responder (or anyone with edit) writes into the request
// annotations, a request is handled once, moves a ramp by at most one step, never outside its
// steps, and is recorded with who and why as written.
func FuzzRequestAnnotation(f *testing.F) {
	for _, raw := range []string{"next:1", "back:2", "approve:x", "next:", ":", "shed:abc", "NEXT:1", "next:1:2", "", "next"} {
		f.Add(raw, "alice@example.com", "AU healthy", int32(2), uint8(0))
	}
	f.Add("back:9", "", "", int32(1), uint8(2))
	f.Add("next:9", "system:serviceaccount:x", strings.Repeat("why ", 100), int32(3), uint8(1))
	f.Fuzz(func(t *testing.T, raw, by, reason string, step int32, handled uint8) {
		spec := sampleSpec(v1alpha1.ActionRamp)
		steps := int32(len(spec.Ramp.Steps))
		step = 1 + abs(step)%(steps+1) // 1..steps+1 (after the last)
		started := metav1.NewTime(t0)
		status := v1alpha1.TrafficPolicyStatus{ObservedAction: v1alpha1.ActionRamp, Phase: v1alpha1.PhaseRamping,
			Ramp: &v1alpha1.RampStatus{Step: step, Steps: steps, StartedAt: &started, StepStartedAt: &started}}
		if handled%3 == 1 {
			status.LastHandledRequest = raw // this very request was handled already
		}
		p := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			v1alpha1.RequestAnnotation: raw, v1alpha1.RequestByAnnotation: by, v1alpha1.RequestReasonAnnotation: reason}},
			Spec: spec, Status: status}

		req := PendingRequest(p)
		if (raw == "" || raw == status.LastHandledRequest) != (req == nil) {
			t.Fatalf("raw %q handled %q: request %+v", raw, status.LastHandledRequest, req)
		}
		plan := MakePlan(PlanInput{Spec: spec, Status: status, Now: t0.Add(time.Minute), Request: req})
		if req != nil && plan.HandledRequest != raw {
			t.Fatalf("handled %q, want %q", plan.HandledRequest, raw)
		}
		if req == nil && plan.HandledRequest != "" {
			t.Fatalf("handled %q with no request pending", plan.HandledRequest)
		}
		if plan.Ramp == nil || plan.Ramp.Step < 1 || plan.Ramp.Step > steps+1 || abs(plan.Ramp.Step-step) > 1 {
			t.Fatalf("step %d → %+v", step, plan.Ramp)
		}
		for _, tr := range plan.Transitions {
			if req != nil && (tr.By != by || tr.Note != reason) {
				t.Fatalf("transition %+v does not carry who (%q) and why (%q)", tr, by, reason)
			}
		}
		if req != nil && len(plan.Transitions) == 0 {
			t.Fatalf("request %q left no trace in history", raw)
		}
	})
}

func abs(n int32) int32 {
	if n < 0 {
		if n == -n { // the smallest int32
			return 0
		}
		return -n
	}
	return n
}
