package hpa

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"floodgate.dev/floodgate/internal/provider"
)

// What a drill knows of an HPA: the fields its timeline prints and its hold.

// TimelineFields are the minimum and the scale-down policy.
func (h *Provider) TimelineFields(o *unstructured.Unstructured) provider.Fields {
	f := provider.Fields{}
	f.Put(o, "minReplicas", pathMinReplicas...)
	f.Put(o, "scaleDown.selectPolicy", "spec", "behavior", "scaleDown", "selectPolicy")
	return f
}

// Hold is an HPA's minimum (1 when unset, as the API defaults it) and whether its scale-down is
// off.
func (h *Provider) Hold(o *unstructured.Unstructured) (minReplicas int64, scaleDownDisabled bool) {
	minReplicas, found, _ := unstructured.NestedInt64(o.Object, pathMinReplicas...)
	if !found {
		minReplicas = 1
	}
	policy, _, _ := unstructured.NestedString(o.Object, "spec", "behavior", "scaleDown", "selectPolicy")
	return minReplicas, strings.EqualFold(policy, "Disabled")
}
