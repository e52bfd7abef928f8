package keda

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"floodgate.dev/floodgate/internal/provider"
)

// What a drill knows of a ScaledObject: the fields its timeline prints, its hold, and the CRD
// it installs.

// TestCRDs is the set of CRDs (test/crds) a drill installs for ScaledObjects: KEDA's.
const TestCRDs = "keda"

// CRDSet names TestCRDs.
func (p *Provider) CRDSet() string { return TestCRDs }

// TimelineFields are the minimum, the paused-scale-in annotation and the HPA's scale-down policy.
func (p *Provider) TimelineFields(o *unstructured.Unstructured) provider.Fields {
	f := provider.Fields{}
	f.Put(o, "minReplicaCount", "spec", "minReplicaCount")
	f.Put(o, "paused-scale-in", "metadata", "annotations", PausedScaleIn)
	f.Put(o, "scaleDown.selectPolicy", "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "selectPolicy")
	return f
}

// Hold is a ScaledObject's minimum and whether its scale-in is paused.
func (p *Provider) Hold(o *unstructured.Unstructured) (minReplicas int64, scaleDownDisabled bool) {
	minReplicas, _, _ = unstructured.NestedInt64(o.Object, "spec", "minReplicaCount")
	return minReplicas, o.GetAnnotations()[PausedScaleIn] == "true"
}
