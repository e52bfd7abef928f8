package core

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func gatedSpec(onFailure v1alpha1.OnGateFailure) v1alpha1.TrafficPolicySpec {
	spec := sampleSpec(v1alpha1.ActionRamp)
	spec.Ramp.OnGateFailure = onFailure
	spec.Ramp.Gate = v1alpha1.GateSettings{PassFor: &metav1.Duration{Duration: time.Minute}, Interval: &metav1.Duration{Duration: 10 * time.Second}}
	for i := range spec.Ramp.Steps {
		spec.Ramp.Steps[i].Gates = []v1alpha1.Gate{{Name: "fleet", WorkloadReady: &v1alpha1.WorkloadReadyGate{Name: "api"}}}
	}
	return spec
}

func reading(v v1alpha1.Verdict, at time.Time) []v1alpha1.GateStatus {
	t := metav1.NewTime(at)
	return []v1alpha1.GateStatus{{Name: "fleet", Verdict: v, ReadAt: &t, Reason: "why"}}
}

func TestAGatedStepEndsOnlyWhenItsGatesPassedForPassFor(t *testing.T) {
	spec := gatedSpec(v1alpha1.OnGateFailureHold)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0, GateReadings: reading(v1alpha1.VerdictFail, t0)}))

	// The hold (5m) has ended but the gate fails: hold, and read it again at the interval.
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(6 * time.Minute), GateReadings: reading(v1alpha1.VerdictFail, t0.Add(6*time.Minute))})
	if p.Progress != "1/3" || p.RequeueAfter != 10*time.Second || p.FailingGate() != "fleet" {
		t.Fatalf("got %s requeue=%v failing=%q", p.Progress, p.RequeueAfter, p.FailingGate())
	}
	st = apply(st, p)
	// It passes now: the step ends only after passFor (1m) of passing.
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(7 * time.Minute), GateReadings: reading(v1alpha1.VerdictPass, t0.Add(7*time.Minute))})
	if p.Progress != "1/3" || p.Ramp.GatesPassingSince == nil || p.RequeueAfter != 10*time.Second {
		t.Fatalf("got %s since=%v requeue=%v", p.Progress, p.Ramp.GatesPassingSince, p.RequeueAfter)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(8 * time.Minute), GateReadings: reading(v1alpha1.VerdictPass, t0.Add(8*time.Minute))})
	if p.Progress != "2/3" || p.Ramp.Gates != nil || p.Ramp.GatesPassingSince != nil {
		t.Fatalf("got %s gates=%v since=%v, want step 2 with its own gates still to read", p.Progress, p.Ramp.Gates, p.Ramp.GatesPassingSince)
	}
}

func TestAnUnknownGateHoldsEvenAfterAPassingStreak(t *testing.T) {
	spec := gatedSpec(v1alpha1.OnGateFailureStepBack)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0, GateReadings: reading(v1alpha1.VerdictPass, t0)}))
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(10 * time.Minute), GateReadings: reading(v1alpha1.VerdictUnknown, t0.Add(10*time.Minute))})
	if p.Progress != "1/3" || p.UnknownGate() != "fleet" || p.Ramp.GatesPassingSince != nil {
		t.Fatalf("Unknown must hold and break the streak: %s unknown=%q since=%v", p.Progress, p.UnknownGate(), p.Ramp.GatesPassingSince)
	}
}

func TestAFailingGateStepsBackNoFasterThanTheHold(t *testing.T) {
	spec := gatedSpec(v1alpha1.OnGateFailureStepBack)
	var st v1alpha1.TrafficPolicyStatus
	st = apply(st, MakePlan(PlanInput{Spec: spec, Now: t0, GateReadings: reading(v1alpha1.VerdictPass, t0)}))
	st = apply(st, MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(5 * time.Minute), GateReadings: reading(v1alpha1.VerdictPass, t0.Add(5*time.Minute))}))
	if st.Progress != "2/3" {
		t.Fatalf("setup: %s", st.Progress)
	}
	at := t0.Add(6 * time.Minute)
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: at, GateReadings: reading(v1alpha1.VerdictFail, at)})
	if p.Progress != "1/3" || p.Transitions[0].Reason != v1alpha1.ReasonGateFailed {
		t.Fatalf("a failing gate must step back: %s %+v", p.Progress, p.Transitions)
	}
	st = apply(st, p)
	// Back at step 1 its gate fails too: no second step back (it is the first step), and when
	// step 2 fails again within step 2's hold of the last step back, it waits.
	st.Ramp.Step, st.Progress = 2, "2/3"
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: at.Add(time.Minute), GateReadings: reading(v1alpha1.VerdictFail, at.Add(time.Minute))})
	if p.Progress != "2/3" {
		t.Fatalf("stepped back again within the hold: %s", p.Progress)
	}
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: at.Add(10 * time.Minute), GateReadings: reading(v1alpha1.VerdictFail, at.Add(10*time.Minute))})
	if p.Progress != "1/3" {
		t.Fatalf("after the hold a repeated failure steps back again: %s", p.Progress)
	}
}

func TestAFailingGateCanShedEverything(t *testing.T) {
	spec := gatedSpec(v1alpha1.OnGateFailureShedAll)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0, GateReadings: reading(v1alpha1.VerdictPass, t0)}))
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Minute), GateReadings: reading(v1alpha1.VerdictFail, t0.Add(time.Minute))})
	if p.Phase != v1alpha1.PhaseShedding || !p.Knobs.Shed || p.Ramp.ShedByGate != "fleet" || p.Transitions[0].Reason != v1alpha1.ReasonGateFailed {
		t.Fatalf("got %s %+v %+v", p.Phase, p.Knobs, p.Transitions)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Hour), GateReadings: reading(v1alpha1.VerdictPass, t0.Add(time.Hour))})
	if p.Phase != v1alpha1.PhaseShedding {
		t.Fatalf("a gate-triggered shed lasts until the action changes: %s", p.Phase)
	}
}

func TestALeverPulledTooLongIsStale(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionShedAll)
	spec.StaleAfter = &metav1.Duration{Duration: 30 * time.Minute}
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(29 * time.Minute)})
	if p.StaleFor != "" || p.RequeueAfter != time.Minute {
		t.Fatalf("not stale yet: stale=%q requeue=%v", p.StaleFor, p.RequeueAfter)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(30 * time.Minute)})
	if p.StaleFor != "30m0s" {
		t.Fatalf("stale=%q", p.StaleFor)
	}
}

func TestShedAllExpiresBackToThePreviousAction(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionNormal)
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	spec.Action = v1alpha1.ActionShedAll
	spec.ShedExpiresAt = &metav1.Time{Time: t0.Add(20 * time.Minute)}
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Minute)})
	if p.Phase != v1alpha1.PhaseShedding || p.RequeueAfter != 19*time.Minute || p.ActionBeforeShed != v1alpha1.ActionNormal {
		t.Fatalf("got %s requeue=%v before=%s", p.Phase, p.RequeueAfter, p.ActionBeforeShed)
	}
	st = apply(st, p)
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(20 * time.Minute)})
	if p.ObservedAction != v1alpha1.ActionNormal || p.Knobs.Shed || p.Transitions[0].Reason != "LeverExpired" {
		t.Fatalf("got %s %+v %+v", p.ObservedAction, p.Knobs, p.Transitions)
	}
	st = apply(st, p)
	if again := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(21 * time.Minute)}); len(again.Transitions) != 0 {
		t.Fatalf("an expired lever must stay expired quietly: %+v", again.Transitions)
	}
}

func TestAShedAllPulledWithAnExpiryAlreadyPastIsNotExpiredByIt(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionNormal)
	spec.ShedExpiresAt = &metav1.Time{Time: t0.Add(-time.Hour)} // left over from the last incident
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))

	spec.Action = v1alpha1.ActionShedAll
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Minute)})
	if p.Phase != v1alpha1.PhaseShedding || !p.Knobs.Shed || len(p.ExpiredLevers) != 0 || p.ObservedAction != v1alpha1.ActionShedAll {
		t.Fatalf("the pull was expired by a past expiry: phase %s knobs %+v expired %v", p.Phase, p.Knobs, p.ExpiredLevers)
	}
	st = apply(st, p)
	if again := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(2 * time.Hour)}); again.Phase != v1alpha1.PhaseShedding || len(again.Transitions) != 0 {
		t.Fatalf("later passes expire it: phase %s transitions %+v", again.Phase, again.Transitions)
	}

	t.Log("a new expiry, later than the pull, is honoured")
	spec.ShedExpiresAt = &metav1.Time{Time: t0.Add(3 * time.Hour)}
	if p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(3 * time.Hour)}); p.ObservedAction != v1alpha1.ActionNormal || p.Knobs.Shed {
		t.Fatalf("a later expiry did not expire the lever: %s %+v", p.ObservedAction, p.Knobs)
	}
}

func TestTheStandingAllowlistExpires(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionNormal)
	spec.AllowRegions = []string{"AU"}
	spec.AllowRegionsExpiresAt = &metav1.Time{Time: t0.Add(time.Hour)}
	p := MakePlan(PlanInput{Spec: spec, Now: t0})
	if !p.Knobs.RestrictRegions || p.RequeueAfter != time.Hour {
		t.Fatalf("got %+v requeue=%v", p.Knobs, p.RequeueAfter)
	}
	p = MakePlan(PlanInput{Spec: spec, Now: t0.Add(time.Hour)})
	if p.Knobs.RestrictRegions || len(p.ExpiredLevers) != 1 {
		t.Fatalf("got %+v expired=%v", p.Knobs, p.ExpiredLevers)
	}
}

func TestAnExpiredAllowlistReturnsToTheOneInForceBefore(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionNormal)
	spec.AllowRegions = []string{"AU", "NZ"}
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))

	step := "narrowed to AU for an hour"
	spec.AllowRegions = []string{"AU"}
	spec.AllowRegionsExpiresAt = &metav1.Time{Time: t0.Add(2 * time.Hour)}
	p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(time.Hour)})
	if !slices.Equal(p.Knobs.AllowRegions, []string{"AU"}) {
		t.Fatalf("%s: got %+v", step, p.Knobs)
	}
	st = apply(st, p)

	step = "the hour is up: back to AU and NZ, not to no restriction"
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(2 * time.Hour)})
	if !slices.Equal(p.Knobs.AllowRegions, []string{"AU", "NZ"}) || !slices.Equal(p.ExpiredLevers, []string{"AllowRegions"}) {
		t.Fatalf("%s: got %+v expired=%v", step, p.Knobs, p.ExpiredLevers)
	}
	st = apply(st, p)

	step = "the list in force stays AU and NZ while the spec is unchanged"
	p = MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(3 * time.Hour)})
	if !slices.Equal(p.Knobs.AllowRegions, []string{"AU", "NZ"}) {
		t.Fatalf("%s: got %+v", step, p.Knobs)
	}
}

func TestTheHoldIsReleasedInStages(t *testing.T) {
	spec := sampleSpec(v1alpha1.ActionShedAll)
	spec.Autoscaling.ReleaseAfter = &metav1.Duration{Duration: 8 * time.Minute}
	st := apply(v1alpha1.TrafficPolicyStatus{}, MakePlan(PlanInput{Spec: spec, Now: t0}))
	spec.Action = v1alpha1.ActionNormal
	var stages []int32
	for _, at := range []time.Duration{0, time.Minute, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute, 7*time.Minute + 59*time.Second, 8 * time.Minute} {
		p := MakePlan(PlanInput{Spec: spec, Status: st, Now: t0.Add(at)})
		stages = append(stages, p.Knobs.ReleaseStage)
		st = apply(st, p)
	}
	want := []int32{1, 1, 2, 3, 4, 4, 0}
	for i := range want {
		if stages[i] != want[i] {
			t.Fatalf("release stages %v, want %v", stages, want)
		}
	}
	if st.Phase != v1alpha1.PhaseNormal || st.HoldSince != nil {
		t.Fatalf("after releaseAfter the hold is gone: %s", st.Phase)
	}
}
