package core

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/knobs"
)

var t0 = time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC)

func sampleSpec(action v1alpha1.Action) v1alpha1.TrafficPolicySpec {
	return v1alpha1.TrafficPolicySpec{
		TargetRefs:     []v1alpha1.TargetRef{{Kind: v1alpha1.TargetKindIngress, Name: "api-gateway"}},
		AutoscalerRefs: []v1alpha1.AutoscalerRef{{Name: "api-gateway"}},
		Autoscaling:    v1alpha1.Autoscaling{ReleaseAfter: &metav1.Duration{Duration: 5 * time.Minute}},
		Action:         action,
		Ramp: &v1alpha1.Ramp{Steps: []v1alpha1.RampStep{
			{AllowRegions: []string{"AU"}, PerClientRequestsPerSecond: ptr.To[int32](50), Hold: metav1.Duration{Duration: 5 * time.Minute}},
			{AllowRegions: []string{"AU", "NZ", "SG"}, PerClientRequestsPerSecond: ptr.To[int32](500), Hold: metav1.Duration{Duration: 10 * time.Minute}},
			{AdmitPercent: ptr.To[int32](50), Hold: metav1.Duration{Duration: 10 * time.Minute}},
		}},
	}
}

// apply writes a plan's fields into a status, as the reconciler does.
func apply(st v1alpha1.TrafficPolicyStatus, p Plan) v1alpha1.TrafficPolicyStatus {
	p.WriteDecisions(&st)
	return st
}

func TestTheSampleRampRunsFromShedAllToCompleted(t *testing.T) {
	type want struct {
		at       time.Duration
		action   v1alpha1.Action
		phase    v1alpha1.Phase
		progress string
		knobs    knobs.Knobs
		requeue  time.Duration
	}
	hold := func(k knobs.Knobs) knobs.Knobs { k.HoldAutoscalers = true; return k }
	release := func(stage int32) knobs.Knobs { return knobs.Knobs{HoldAutoscalers: true, ReleaseStage: stage} }
	steps := []want{
		// Shedding looks again only when the lever would turn stale (staleAfter, 2h by default).
		{0, v1alpha1.ActionShedAll, v1alpha1.PhaseShedding, "", hold(knobs.ShedAll()), 2 * time.Hour},
		{10 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseRamping, "1/3", hold(knobs.New(true, []string{"AU"}, 50, 0)), 5 * time.Minute},
		{14 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseRamping, "1/3", hold(knobs.New(true, []string{"AU"}, 50, 0)), time.Minute},
		{15 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseRamping, "2/3", hold(knobs.New(true, []string{"AU", "NZ", "SG"}, 500, 0)), 10 * time.Minute},
		{25 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseRamping, "3/3", hold(knobs.New(false, nil, 0, 50)), 10 * time.Minute},
		// The hold is released in 4 stages over releaseAfter (5m): the next stage in 75s.
		{35 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseReleasing, "3/3", release(1), 75 * time.Second},
		{40 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseCompleted, "3/3", knobs.Knobs{}, 0},
		// GitOps re-applies the same spec: the run does not restart.
		{90 * time.Minute, v1alpha1.ActionRamp, v1alpha1.PhaseCompleted, "3/3", knobs.Knobs{}, 0},
	}
	var st v1alpha1.TrafficPolicyStatus
	for _, w := range steps {
		p := MakePlan(PlanInput{Spec: sampleSpec(w.action), Status: st, Now: t0.Add(w.at), DefaultReleaseAfter: 5 * time.Minute})
		if p.Phase != w.phase || p.Progress != w.progress || !p.Knobs.Equal(w.knobs) || p.RequeueAfter != w.requeue {
			t.Fatalf("at %v: got phase=%s progress=%q knobs=%+v requeue=%v; want phase=%s progress=%q knobs=%+v requeue=%v",
				w.at, p.Phase, p.Progress, p.Knobs, p.RequeueAfter, w.phase, w.progress, w.knobs, w.requeue)
		}
		st = apply(st, p)
	}
}

func TestShedAllToNormalReturnsTrafficAtOnceAndReleasesTheHoldLater(t *testing.T) {
	var st v1alpha1.TrafficPolicyStatus
	st = apply(st, MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionShedAll), Status: st, Now: t0}))
	p := MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionNormal), Status: st, Now: t0.Add(time.Minute)})
	if p.Phase != v1alpha1.PhaseReleasing || !p.Knobs.Traffic().IsFullTraffic() || !p.Knobs.HoldAutoscalers {
		t.Fatalf("got %s %+v, want Releasing with full traffic and the hold kept", p.Phase, p.Knobs)
	}
	if !p.ReleaseAt.Equal(&metav1.Time{Time: t0.Add(6 * time.Minute)}) {
		t.Fatalf("releaseAt = %v, want releaseAfter (5m) after traffic returned", p.ReleaseAt)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionNormal), Status: st, Now: t0.Add(6 * time.Minute)})
	if p.Phase != v1alpha1.PhaseNormal || p.Knobs.HoldAutoscalers || p.HoldSince != nil || p.RequeueAfter != 0 || p.LeverPulledAt != nil {
		t.Fatalf("got %s %+v requeue=%v, want Normal with nothing held and no requeue", p.Phase, p.Knobs, p.RequeueAfter)
	}
}

func TestReleaseDefaultsToTheStabilizationWindowWhenUnset(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionShedAll)
	spec.Autoscaling.ReleaseAfter = nil
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	spec.Action = v1alpha1.ActionNormal
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0, DefaultReleaseAfter: 7 * time.Minute})
	if p.ReleaseAt.Sub(t0) != 7*time.Minute {
		t.Fatalf("releaseAt = %v, want the autoscalers' window 7m", p.ReleaseAt)
	}
}

func TestRampAfterARestartKeepsItsStepAndTheHoldTimeLeft(t *testing.T) {
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionRamp), Now: t0}))
	// The status survives the operator; a new process plans from it three minutes later.
	p := MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionRamp), Status: *st.DeepCopy(), Now: t0.Add(3 * time.Minute)})
	if p.Progress != "1/3" || p.RequeueAfter != 2*time.Minute {
		t.Fatalf("got %s requeue %v, want 1/3 with 2m left", p.Progress, p.RequeueAfter)
	}
}

func TestAnOperatorThatWasDownAdvancesOneStepAtATime(t *testing.T) {
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionRamp), Now: t0}))
	p := MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionRamp), Status: st, Now: t0.Add(time.Hour)})
	if p.Progress != "2/3" || p.RequeueAfter != 10*time.Minute {
		t.Fatalf("got %s requeue %v, want step 2 with its whole hold", p.Progress, p.RequeueAfter)
	}
}

func TestStandingAllowlistIsIntersectedWithTheStep(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionRamp)
	spec.AllowRegions = []string{"NZ", "US"}
	p := MakePlan(PlanInput{Spec: spec, Now: t0})
	// Step 1 admits AU only; the standing list admits NZ and US: nobody is left, so all is shed.
	if !p.Knobs.Shed {
		t.Fatalf("knobs = %+v, want shed (empty intersection)", p.Knobs)
	}
	spec.Action = v1alpha1.ActionNormal
	p = MakePlan(PlanInput{Spec: spec, Now: t0})
	if !p.Knobs.RestrictRegions || len(p.Knobs.AllowRegions) != 2 {
		t.Fatalf("Normal must keep the standing allowlist, got %+v", p.Knobs)
	}
}

func TestLeavingAndReEnteringRampStartsANewRun(t *testing.T) {
	var st v1alpha1.TrafficPolicyStatus
	for i, a := range []v1alpha1.Action{v1alpha1.ActionRamp, v1alpha1.ActionRamp, v1alpha1.ActionShedAll, v1alpha1.ActionRamp} {
		st = apply(st, MakePlan(PlanInput{Spec: sampleSpec(a), Status: st, Now: t0.Add(time.Duration(i) * 6 * time.Minute)}))
	}
	if st.Progress != "1/3" || !st.Ramp.StartedAt.Equal(&metav1.Time{Time: t0.Add(18 * time.Minute)}) {
		t.Fatalf("got %s started %v, want a new run at step 1", st.Progress, st.Ramp.StartedAt)
	}
}

func TestEveryPhaseChangeIsATransition(t *testing.T) {
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionNormal), Now: t0}))
	p := MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionNormal), Status: st, Now: t0.Add(time.Minute)})
	if len(p.Transitions) != 0 {
		t.Fatalf("steady state made transitions: %+v", p.Transitions)
	}
	p = MakePlan(PlanInput{Spec: sampleSpec(v1alpha1.ActionShedAll), Status: st, Now: t0.Add(time.Minute)})
	if len(p.Transitions) != 1 || p.Transitions[0].Reason != "ActionChanged" || p.Transitions[0].Phase != v1alpha1.PhaseShedding {
		t.Fatalf("transitions = %+v", p.Transitions)
	}
}
