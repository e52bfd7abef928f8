package core

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

// verdict is a condition as the table reads it: "True Reason" or "False Reason".
func verdict(c metav1.Condition) string { return string(c.Status) + " " + c.Reason }

func TestTheConditionsOfEachOutcome(t *testing.T) {
	conflict := provider.NewProblem("Ingress api: another policy's record", &restore.OwnedByOtherError{Owner: "other"})
	awaiting := provider.NewProblem("HTTPRoute api: not reported on yet", provider.ErrAwaitingDataPlane)
	shedding := Outcome{Phase: v1alpha1.PhaseShedding, ShedEndpoints: 2}
	with := func(edit func(*Outcome)) Outcome { o := shedding; edit(&o); return o }
	for _, c := range []struct {
		name                         string
		outcome                      Outcome
		ready, degraded, progressing string
		readyMessage                 string // a part of Ready's message
	}{
		{"applied", shedding, "True Applied", "False Healthy", "False " + v1alpha1.ReasonShedding, "phase Shedding is applied to every target"},
		{"a target in the way", with(func(o *Outcome) { o.Problems = []provider.Problem{conflict} }),
			"False Conflict", "True Conflict", "False " + v1alpha1.ReasonShedding, "applied to every object but: Ingress api"},
		{"a ramp that holds", with(func(o *Outcome) {
			o.Phase, o.Held, o.Problems = v1alpha1.PhaseRamping, true, []provider.Problem{conflict}
		}),
			"False Conflict", "True Conflict", "False " + v1alpha1.ReasonRampHeld, "the ramp holds"},
		{"a write that failed", with(func(o *Outcome) { o.ApplyErr = errors.New("the API server is unavailable") }),
			"False " + v1alpha1.ReasonApplyFailed, "True " + v1alpha1.ReasonApplyFailed, "False " + v1alpha1.ReasonShedding, "retrying"},
		{"restoring", with(func(o *Outcome) { o.Phase = v1alpha1.PhaseRestoring }),
			"False " + v1alpha1.ReasonPending, "False Healthy", "False " + v1alpha1.ReasonIdle, "restoring"},
		{"no shed endpoint ready", with(func(o *Outcome) { o.ShedEndpoints = 0 }),
			"False " + v1alpha1.ReasonNoShedBackend, "True " + v1alpha1.ReasonNoShedBackend, "False " + v1alpha1.ReasonShedding, "not shedding"},
		{"no shed endpoint ready, some draining", with(func(o *Outcome) { o.ShedEndpoints, o.ShedDraining = 0, 1 }),
			"False " + v1alpha1.ReasonNoShedBackend, "True " + v1alpha1.ReasonNoShedBackend, "False " + v1alpha1.ReasonShedding, "1 terminating shed endpoint(s) still serve"},
		{"a gateway not reported yet is under way, not a fault", with(func(o *Outcome) { o.Problems = []provider.Problem{awaiting} }),
			"False " + v1alpha1.ReasonAwaitingGateway, "False Healthy", "False " + v1alpha1.ReasonShedding, "not reported on yet"},
		{"a field someone else changed", with(func(o *Outcome) { o.Phase, o.KeptOthers = v1alpha1.PhaseNormal, []string{"Ingress api annotations.x"} }),
			"True Applied", "True " + v1alpha1.ReasonFieldChanged, "False " + v1alpha1.ReasonIdle, "phase Normal"},
		{"an answer claimed from another namespace", with(func(o *Outcome) { o.AnswerProblems = []provider.Problem{conflict} }),
			"True Applied", "True Conflict", "False " + v1alpha1.ReasonShedding, "applied to every target"},
		{"an object dropped from the spec that cannot be put back", with(func(o *Outcome) { o.Leftovers = []provider.Problem{conflict} }),
			"True Applied", "True Conflict", "False " + v1alpha1.ReasonShedding, "applied to every target"},
		{"ramping", with(func(o *Outcome) { o.Phase = v1alpha1.PhaseRamping }),
			"True Applied", "False Healthy", "True " + v1alpha1.ReasonRampStep, "phase Ramping"},
		{"releasing", with(func(o *Outcome) { o.Phase = v1alpha1.PhaseReleasing }),
			"True Applied", "False Healthy", "True " + v1alpha1.ReasonReleasing, "phase Releasing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ready, degraded, progressing := readyCondition(c.outcome), degradedCondition(c.outcome), progressingCondition(c.outcome)
			if got := verdict(ready); got != c.ready {
				t.Errorf("Ready %s, want %s", got, c.ready)
			}
			if !strings.Contains(ready.Message, c.readyMessage) {
				t.Errorf("Ready's message %q lacks %q", ready.Message, c.readyMessage)
			}
			if got := verdict(degraded); got != c.degraded {
				t.Errorf("Degraded %s, want %s", got, c.degraded)
			}
			if got := verdict(progressing); got != c.progressing {
				t.Errorf("Progressing %s, want %s", got, c.progressing)
			}
		})
	}
}

func TestTheOneReasonConditions(t *testing.T) {
	for _, c := range []struct {
		name string
		got  metav1.Condition
		want string
	}{
		{"every step supported", stepUnsupportedCondition(Outcome{}), "False " + v1alpha1.ReasonAllSupported},
		{"a step unsupported", stepUnsupportedCondition(Outcome{Unsupported: []string{"step 1 on HTTPRoute api: x"}}), "True " + v1alpha1.ReasonUnsupported},
		{"a ramp completed", rampCompleteCondition(Outcome{Phase: v1alpha1.PhaseCompleted}), "True " + v1alpha1.ReasonRampComplete},
		{"no ramp completed", rampCompleteCondition(Outcome{Phase: v1alpha1.PhaseNormal}), "False " + v1alpha1.ReasonRampNotComplete},
		{"a gate unknown while ramping", gateUnknownCondition(Outcome{Phase: v1alpha1.PhaseRamping, UnknownGate: "p99: no data"}), "True " + v1alpha1.ReasonGatesHolding},
		{"a gate unknown outside a ramp is no hold", gateUnknownCondition(Outcome{Phase: v1alpha1.PhaseShedding, UnknownGate: "p99: no data"}), "False " + v1alpha1.ReasonGatesTrusted},
		{"a lever pulled too long", leverStaleCondition(Outcome{StaleFor: "2h"}), "True " + v1alpha1.ReasonLeverStale},
		{"a lever at rest", leverStaleCondition(Outcome{}), "False " + v1alpha1.ReasonLeverFresh},
	} {
		if got := verdict(c.got); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	more := stepUnsupportedCondition(Outcome{Unsupported: []string{"a", "b", "c"}})
	if more.Message != "a (and 2 more: see status.targets[].unsupported)" {
		t.Errorf("StepUnsupported's message: %q", more.Message)
	}
}

func TestSetConditionsStampsTheGenerationOnEveryCondition(t *testing.T) {
	p := &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 7}}
	SetConditions(p, Outcome{Phase: v1alpha1.PhaseNormal, ShedEndpoints: -1})
	if len(p.Status.Conditions) != 7 {
		t.Fatalf("%d conditions, want Ready, Progressing, Degraded, RampComplete, GateUnknown, LeverStale, StepUnsupported", len(p.Status.Conditions))
	}
	for _, c := range p.Status.Conditions {
		if c.ObservedGeneration != 7 {
			t.Errorf("%s observed generation %d", c.Type, c.ObservedGeneration)
		}
	}
}

func TestHistoryKeepsTheLastTransitions(t *testing.T) {
	var h []v1alpha1.Transition
	for i := range v1alpha1.MaxHistory + 5 {
		h = AppendHistory(h, v1alpha1.Transition{Message: fmt.Sprint(i)})
	}
	if len(h) != v1alpha1.MaxHistory || h[0].Message != "5" || h[len(h)-1].Message != fmt.Sprint(v1alpha1.MaxHistory+4) {
		t.Fatalf("%d transitions, first %q, last %q", len(h), h[0].Message, h[len(h)-1].Message)
	}
}
