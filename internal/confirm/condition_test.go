package confirm

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func TestTheConfirmedCondition(t *testing.T) {
	flip := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	probes := []Probe{
		{Target: "Ingress/web", Address: "http://proxy", Host: "web.example.com", Path: "/", Expect: ExpectShed, Code: 503},
		{Target: "Ingress/api", Address: "http://proxy", Host: "api.example.com", Path: "/", Expect: ExpectShed, Code: 503},
	}
	shed := Result{Answer: Answer{Code: 503, Shed: true, Policy: "edge/p", Generation: 2}, At: flip.Add(time.Second), Lands: true}
	notFound := Result{Answer: Answer{Code: 404}, At: flip.Add(time.Second)}
	verdict := func(results ...Result) Verdict {
		v := Verdict{Since: flip, Plan: Plan{Probes: probes}, Results: results}
		if len(results) == 2 && results[0].Lands && results[1].Lands {
			v.ConfirmedAt = flip.Add(time.Second)
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		v      Verdict
		now    time.Time
		status metav1.ConditionStatus
		reason string
		says   string
	}{
		{"nothing probed", Verdict{Plan: Plan{NotProbed: "the manager has no probe key"}}, flip, metav1.ConditionUnknown, v1alpha1.ReasonNotProbed, "nothing is probed: the manager has no probe key"},
		{"no answer yet", verdict(Result{}, Result{}), flip, metav1.ConditionUnknown, v1alpha1.ReasonConfirming, "probing 2 route(s) of 2 target(s)"},
		{"one answered", verdict(shed, Result{}), flip.Add(time.Second), metav1.ConditionUnknown, v1alpha1.ReasonConfirming, "probing"},
		{"every probe lands", verdict(shed, shed), flip.Add(time.Second), metav1.ConditionTrue, v1alpha1.ReasonDataPlaneAnswers, "2 probe(s) of 2 target(s)"},
		{"one does not, within the grace", verdict(shed, notFound), flip.Add(time.Second), metav1.ConditionUnknown, v1alpha1.ReasonConfirming,
			"within the grace after the flip, the data plane does not answer as the lever says yet: Ingress/api: GET api.example.com/ through http://proxy should be shed by this policy (503 from the shed server), got an answer 404 not from the shed server"},
		{"one does not, past the grace", verdict(shed, notFound), flip.Add(10 * time.Second), metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees,
			"the data plane does not answer as the lever says: Ingress/api: GET api.example.com/"},
		{"neither does", verdict(notFound, notFound), flip.Add(time.Minute), metav1.ConditionFalse, v1alpha1.ReasonDataPlaneDisagrees, "(and 1 more probe(s): see status.targets[].confirmMessage)"},
	} {
		c := Condition(tc.v, 10*time.Second, tc.now)
		if c.Type != v1alpha1.ConditionConfirmed || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.says) {
			t.Errorf("%s: %s %s %q, want %s %s saying %q", tc.name, c.Status, c.Reason, c.Message, tc.status, tc.reason, tc.says)
		}
	}
	if m := TargetMessages(verdict(shed, notFound)); m["Ingress/web"] != "" || !strings.Contains(m["Ingress/api"], "got an answer 404") {
		t.Errorf("target messages %v", m)
	}
}
