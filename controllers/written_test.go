package controllers

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func policyAt(rv string) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "api", ResourceVersion: rv}}
}

func TestACachedPolicyOlderThanOurLastWriteIsReadFromTheAPIServer(t *testing.T) {
	var w writtenVersions
	if w.newerThan(policyAt("5")) {
		t.Fatal("nothing written yet: the cache is good")
	}
	w.note(policyAt("10"))
	for rv, stale := range map[string]bool{"9": true, "10": false, "11": false, "opaque": true} {
		if got := w.newerThan(policyAt(rv)); got != stale {
			t.Errorf("cached at %s after writing 10: read from the API server = %v, want %v", rv, got, stale)
		}
	}
	w.readThrough(types.NamespacedName{Namespace: "edge", Name: "api"})
	if !w.newerThan(policyAt("11")) {
		t.Error("after a stale status write the next pass reads the API server")
	}
	w.forget(types.NamespacedName{Namespace: "edge", Name: "api"})
	if w.newerThan(policyAt("1")) {
		t.Error("a policy gone is forgotten")
	}
}
