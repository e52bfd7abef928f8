package pass

import (
	"fmt"
	"testing"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// Status stays bounded whatever the fleet: with a targetSelector, the first targets with a problem
// and the first others are listed, and the rest counted.
func TestStatusListsABoundedPartOfAFleet(t *testing.T) {
	for _, tc := range []struct {
		name                              string
		problems, clean                   int
		listedProblems, listed, notListed int
	}{
		{"a small fleet is listed whole", 2, 8, 2, 10, 0},
		{"clean targets past the bound are counted", 0, 10_000, 0, MaxListedTargets, 10_000 - MaxListedTargets},
		{"every target with a problem, up to its bound", 30, 100, 30, 30 + MaxListedTargets, 100 - MaxListedTargets},
		{"a fleet-wide problem names the first of them", 10_000, 0, MaxListedProblemTargets, MaxListedProblemTargets, 10_000 - MaxListedProblemTargets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e statusEntries
			for i := range tc.problems {
				e.targets = append(e.targets, v1alpha1.TargetStatus{Kind: "Ingress", Name: fmt.Sprintf("bad-%05d", i), Found: true, Reason: "Conflict"})
			}
			for i := range tc.clean {
				e.targets = append(e.targets, v1alpha1.TargetStatus{Kind: "Ingress", Name: fmt.Sprintf("ok-%05d", i), Found: true})
			}
			policy := &v1alpha1.TrafficPolicy{Spec: v1alpha1.TrafficPolicySpec{TargetSelector: &v1alpha1.TargetSelector{MatchLabels: map[string]string{"tier": "edge"}}}}
			e.file(policy)
			problems := 0
			for _, t := range policy.Status.Targets {
				if t.Reason != "" {
					problems++
				}
			}
			if got := []int{problems, len(policy.Status.Targets), int(policy.Status.TargetsNotListed), int(policy.Status.TargetCount)}; got[0] != tc.listedProblems ||
				got[1] != tc.listed || got[2] != tc.notListed || got[3] != tc.problems+tc.clean {
				t.Fatalf("problems listed, listed, not listed, count = %v; want %d, %d, %d, %d", got, tc.listedProblems, tc.listed, tc.notListed, tc.problems+tc.clean)
			}
		})
	}
}
