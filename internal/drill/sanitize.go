package drill

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// sanitize leaves out of a copy what belongs to the live object, not its declaration, and
// Floodgate's own state.
func sanitize(o *unstructured.Unstructured) {
	delete(o.Object, "status")
	for _, f := range []string{"uid", "resourceVersion", "managedFields", "ownerReferences", "creationTimestamp", "generation",
		"selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	ann := o.GetAnnotations()
	for k := range ann {
		if strings.HasPrefix(k, "traffic.floodgate.dev/") || k == "kubectl.kubernetes.io/last-applied-configuration" || k == "deployment.kubernetes.io/revision" {
			delete(ann, k)
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	o.SetAnnotations(ann)
	if o.GetKind() == gvkService.Kind {
		for _, f := range []string{"clusterIP", "clusterIPs", "healthCheckNodePort"} {
			unstructured.RemoveNestedField(o.Object, "spec", f)
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		for _, p := range ports {
			delete(p.(map[string]any), "nodePort")
		}
		_ = unstructured.SetNestedSlice(o.Object, ports, "spec", "ports")
	}
}
