package core

import (
	"testing"
	"time"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func TestPausedTimeDoesNotCountTowardsTheHold(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionRamp)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	spec.Ramp.Paused = true
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(2 * time.Minute)})
	if p.Phase != v1alpha1.PhasePaused || p.RequeueAfter != 2*time.Hour-2*time.Minute || p.Transitions[0].Reason != "Paused" {
		t.Fatalf("got %s requeue=%v %+v, want Paused, looking again only when the lever turns stale", p.Phase, p.RequeueAfter, p.Transitions)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(20 * time.Minute)})
	if p.Progress != "1/3" {
		t.Fatalf("a paused ramp moved on: %s", p.Progress)
	}
	st = apply(st, p)
	spec.Ramp.Paused = false
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(30 * time.Minute)})
	if p.Phase != v1alpha1.PhaseRamping || p.RequeueAfter != 3*time.Minute || p.Transitions[0].Reason != "Resumed" {
		t.Fatalf("got %s requeue=%v %+v, want Ramping with the 3 minutes left", p.Phase, p.RequeueAfter, p.Transitions)
	}
}

func TestManualStepWaitsForApproveAfterItsHold(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionRamp)
	spec.Ramp.Steps[0].Approval = v1alpha1.ApprovalManual
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))

	early := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Minute), Request: &Request{Raw: "approve:1", Verb: VerbApprove, By: "alice", Reason: "looks good"}})
	if early.Progress != "1/3" || early.Transitions[0].Reason != "RequestIgnored" {
		t.Fatalf("approve before the hold ended must do nothing: %s %+v", early.Progress, early.Transitions)
	}
	st = apply(st, early)
	st.LastHandledRequest = early.HandledRequest

	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(6 * time.Minute)})
	if p.Progress != "1/3" || !p.Ramp.AwaitingApproval || p.RequeueAfter != 2*time.Hour-6*time.Minute || p.Transitions[0].Reason != "AwaitingApproval" {
		t.Fatalf("got %s awaiting=%v requeue=%v %+v", p.Progress, p.Ramp.AwaitingApproval, p.RequeueAfter, p.Transitions)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(7 * time.Minute), Request: &Request{Raw: "approve:2", Verb: VerbApprove, By: "alice", Reason: "error rate flat"}})
	if p.Progress != "2/3" || p.Transitions[0].Reason != "Approved" || p.Transitions[0].By != "alice" || p.Transitions[0].Note != "error rate flat" {
		t.Fatalf("got %s %+v", p.Progress, p.Transitions)
	}
}

func TestNextAndBackMoveOneStepNow(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionRamp)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Minute), Request: &Request{Raw: "next:a", Verb: VerbNext}})
	if p.Progress != "2/3" || p.RequeueAfter != 10*time.Minute || p.HandledRequest != "next:a" {
		t.Fatalf("next: got %s requeue=%v handled=%q", p.Progress, p.RequeueAfter, p.HandledRequest)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(2 * time.Minute), Request: &Request{Raw: "back:b", Verb: VerbBack, Reason: "5xx rising"}})
	if p.Progress != "1/3" || p.RequeueAfter != 5*time.Minute || p.Transitions[0].Reason != "StepBack" || p.Transitions[0].Note != "5xx rising" {
		t.Fatalf("back: got %s requeue=%v %+v", p.Progress, p.RequeueAfter, p.Transitions)
	}
}

func TestBackFromReleasingReturnsToTheLastStep(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionRamp)
	var st v1alpha1.TrafficPolicyStatus
	for _, at := range []time.Duration{0, 5 * time.Minute, 15 * time.Minute, 25 * time.Minute} {
		st = apply(st, MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(at)}))
	}
	if st.Phase != v1alpha1.PhaseReleasing {
		t.Fatalf("setup: phase %s", st.Phase)
	}
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(26 * time.Minute), Request: &Request{Raw: "back:1", Verb: VerbBack}})
	if p.Phase != v1alpha1.PhaseRamping || p.Progress != "3/3" || !p.Knobs.HoldAutoscalers || p.ReleaseAt != nil {
		t.Fatalf("got %s %s %+v releaseAt=%v", p.Phase, p.Progress, p.Knobs, p.ReleaseAt)
	}
}

func TestARequestIsHandledOnceEvenWhenTheAnnotationStays(t *testing.T) {
	policy := &v1alpha1.TrafficPolicy{}
	policy.Annotations = map[string]string{v1alpha1.RequestAnnotation: "next:42", v1alpha1.RequestByAnnotation: "bob"}
	req := PendingRequest(policy)
	if req == nil || req.Verb != "next" || req.By != "bob" {
		t.Fatalf("got %+v", req)
	}
	policy.Status.LastHandledRequest = "next:42"
	if PendingRequest(policy) != nil {
		t.Fatal("an acknowledged request must not be handled again (GitOps re-apply)")
	}
}

func TestNextWhileShedAllIsIgnoredAndSaysSo(t *testing.T) {
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionShedAll), Now: t0}))
	p := MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionShedAll), Status: st, Now: t0, Request: &Request{Raw: "next:1", Verb: VerbNext}})
	if p.Phase != v1alpha1.PhaseShedding || len(p.Transitions) != 1 || p.Transitions[0].Reason != "RequestIgnored" || p.HandledRequest != "next:1" {
		t.Fatalf("got %s %+v handled=%q", p.Phase, p.Transitions, p.HandledRequest)
	}
}
