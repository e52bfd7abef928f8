package gatewayapi

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Gateway plays a gateway where none runs (drills, envtest): it reports on every HTTPRoute's
// current generation for each of its parentRefs, as a real implementation's status writer does.
// Judge decides the verdict (nil: every route accepted).
type Gateway struct {
	Client         client.Client
	ControllerName string
	// Judge returns "" to accept a route, or the message of a rejection.
	Judge func(*gatewayv1.HTTPRoute) string
}

// Run reports on routes every interval until ctx ends.
func (g *Gateway) Run(ctx context.Context, interval time.Duration) {
	wait.UntilWithContext(ctx, func(ctx context.Context) { _ = g.ReportAll(ctx) }, interval)
}

// ReportAll reports on every route whose current generation has no verdict yet.
func (g *Gateway) ReportAll(ctx context.Context) error {
	var routes gatewayv1.HTTPRouteList
	if err := g.Client.List(ctx, &routes); err != nil {
		return err
	}
	for i := range routes.Items {
		if err := g.Report(ctx, &routes.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

// Report writes the verdict on the route's current generation, unless it is there already.
func (g *Gateway) Report(ctx context.Context, route *gatewayv1.HTTPRoute) error {
	status, reason, message := metav1.ConditionTrue, "Accepted", "Route is accepted"
	if g.Judge != nil {
		if why := g.Judge(route); why != "" {
			status, reason, message = metav1.ConditionFalse, "Invalid", why
		}
	}
	before := route.DeepCopy()
	var parents []gatewayv1.RouteParentStatus
	for _, ref := range route.Spec.ParentRefs {
		ps := gatewayv1.RouteParentStatus{ParentRef: ref, ControllerName: gatewayv1.GatewayController(g.ControllerName)}
		if existing := parentStatus(route, ref); existing != nil {
			ps.Conditions = existing.Conditions
		}
		for _, t := range verdictConditions {
			r := reason
			if t == string(gatewayv1.RouteConditionResolvedRefs) && status == metav1.ConditionTrue {
				r = "ResolvedRefs"
			}
			meta.SetStatusCondition(&ps.Conditions, metav1.Condition{Type: t, Status: status, Reason: r, Message: message,
				ObservedGeneration: route.Generation})
		}
		parents = append(parents, ps)
	}
	route.Status.Parents = parents
	if equalStatus(before, route) {
		return nil
	}
	if err := g.Client.Status().Patch(ctx, route, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reporting on HTTPRoute %s/%s: %w", route.Namespace, route.Name, err)
	}
	return nil
}

func equalStatus(a, b *gatewayv1.HTTPRoute) bool {
	return sameJSON(a.Status, b.Status)
}
