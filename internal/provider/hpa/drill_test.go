package hpa

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestADrillReadsAnHPAsHoldFromItsMinimumAndScaleDownPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     map[string]any
		min      int64
		disabled bool
	}{
		{"minReplicas unset is the API's default of 1", map[string]any{}, 1, false},
		{"held", map[string]any{"minReplicas": int64(12), "behavior": map[string]any{"scaleDown": map[string]any{"selectPolicy": "Disabled"}}}, 12, true},
		{"released", map[string]any{"minReplicas": int64(3), "behavior": map[string]any{"scaleDown": map[string]any{"selectPolicy": "Max"}}}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &unstructured.Unstructured{Object: map[string]any{"spec": tc.spec}}
			min, disabled := (&Provider{}).Hold(o)
			if min != tc.min || disabled != tc.disabled {
				t.Fatalf("Hold = %d, %v; want %d, %v", min, disabled, tc.min, tc.disabled)
			}
			if got := (&Provider{}).TimelineFields(o)["minReplicas"]; tc.spec["minReplicas"] != nil && got == "" {
				t.Fatalf("the timeline does not print minReplicas")
			}
		})
	}
}
