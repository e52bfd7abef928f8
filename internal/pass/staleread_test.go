package pass

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestAStaleReadIsRetriedNotReported(t *testing.T) {
	hpa := schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}
	ingress := schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}
	for _, tc := range []struct {
		name  string
		err   error
		stale bool
	}{
		{"a conflict on a patch, wrapped", fmt.Errorf("holding HPA api-gateway: %w", apierrors.NewConflict(hpa, "api-gateway", errors.New("the object has been modified"))), true},
		{"a companion the cache had not seen yet", fmt.Errorf("creating canary: %w", apierrors.NewAlreadyExists(ingress, "api-gateway-floodgate-api-gateway")), true},
		{"RBAC denied", fmt.Errorf("holding HPA api-gateway: %w", apierrors.NewForbidden(hpa, "api-gateway", errors.New("no"))), false},
		{"an invalid object", apierrors.NewBadRequest("limit-rps is not a number"), false},
	} {
		if got := StaleRead(tc.err); got != tc.stale {
			t.Errorf("%s: StaleRead = %v, want %v", tc.name, got, tc.stale)
		}
	}
}
