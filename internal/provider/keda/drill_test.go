package keda

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestADrillReadsAScaledObjectsHoldFromItsMinimumAndPausedScaleIn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		paused   string
		min      int64
		disabled bool
	}{
		{"held", "true", 12, true},
		{"released", "", 12, false},
		{"paused-scale-in other than true does not pause", "false", 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"minReplicaCount": tc.min}}}
			if tc.paused != "" {
				o.SetAnnotations(map[string]string{PausedScaleIn: tc.paused})
			}
			min, disabled := (&Provider{}).Hold(o)
			if min != tc.min || disabled != tc.disabled {
				t.Fatalf("Hold = %d, %v; want %d, %v", min, disabled, tc.min, tc.disabled)
			}
			if got := (&Provider{}).TimelineFields(o)["paused-scale-in"]; got != tc.paused {
				t.Fatalf("the timeline prints paused-scale-in %q, want %q", got, tc.paused)
			}
		})
	}
}
