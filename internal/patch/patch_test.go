package patch_test

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"floodgate.dev/floodgate/internal/patch"
)

func TestAPatchNeverSetsAnnotationsOrLabelsToNull(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after metav1.ObjectMeta
		want          string
	}{
		{"the last annotation seen goes: only it is removed",
			metav1.ObjectMeta{ResourceVersion: "7", Annotations: map[string]string{"traffic.floodgate.dev/restore": "{}"}},
			metav1.ObjectMeta{ResourceVersion: "7"},
			`{"metadata":{"annotations":{"traffic.floodgate.dev/restore":null},"resourceVersion":"7"}}`},
		{"the last label seen goes: only it is removed",
			metav1.ObjectMeta{ResourceVersion: "7", Labels: map[string]string{"a": "b"}},
			metav1.ObjectMeta{ResourceVersion: "7", Labels: map[string]string{}},
			`{"metadata":{"labels":{"a":null},"resourceVersion":"7"}}`},
		{"one annotation of two goes: the merge patch as it is",
			metav1.ObjectMeta{ResourceVersion: "7", Annotations: map[string]string{"a": "1", "b": "2"}},
			metav1.ObjectMeta{ResourceVersion: "7", Annotations: map[string]string{"a": "1"}},
			`{"metadata":{"annotations":{"b":null},"resourceVersion":"7"}}`},
		{"nothing changes but the lock",
			metav1.ObjectMeta{ResourceVersion: "7"},
			metav1.ObjectMeta{ResourceVersion: "7"},
			`{"metadata":{"resourceVersion":"7"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := &networkingv1.Ingress{ObjectMeta: tc.before}
			after := &networkingv1.Ingress{ObjectMeta: tc.after}
			got, err := patch.From(before).Data(after)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("patch %s, want %s", got, tc.want)
			}
		})
	}
}
