package gatewayapi

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/internal/provider"
)

// verdictConditions are the route conditions a gateway must report True, at the route's current
// generation, for a change to count as applied.
var verdictConditions = []string{string(gatewayv1.RouteConditionAccepted), string(gatewayv1.RouteConditionResolvedRefs)}

// Verdict is what the gateways serving a route say of its current generation.
type Verdict struct {
	// Rejected names each parent that reported a verdict condition False, with the gateway's
	// reason and message.
	Rejected []string
	// Pending names each parent that has not reported on the current generation yet.
	Pending []string
}

// VerdictOf reads the route's status: for every parentRef of its spec, the parent's Accepted and
// ResolvedRefs conditions at the route's current generation.
func VerdictOf(route *gatewayv1.HTTPRoute) Verdict {
	var v Verdict
	for _, ref := range route.Spec.ParentRefs {
		name := parentName(route.Namespace, ref)
		status := parentStatus(route, ref)
		if status == nil {
			v.Pending = append(v.Pending, name)
			continue
		}
		for _, t := range verdictConditions {
			c := meta.FindStatusCondition(status.Conditions, t)
			switch {
			case c == nil || c.ObservedGeneration < route.Generation:
				v.Pending = append(v.Pending, name)
			case c.Status == metav1.ConditionFalse:
				v.Rejected = append(v.Rejected, fmt.Sprintf("%s (%s=False, %s: %s)", name, t, c.Reason, c.Message))
			case c.Status != metav1.ConditionTrue:
				v.Pending = append(v.Pending, name)
			default:
				continue
			}
			break
		}
	}
	return v
}

// verdictProblems are the problems a gateway's verdict on Floodgate's change makes: a rejection
// is RejectedByGateway (Degraded, and a ramp holds); a verdict not reported yet is
// AwaitingGateway (the change is not counted as applied until it is).
func verdictProblems(route *gatewayv1.HTTPRoute) []provider.Problem {
	v := VerdictOf(route)
	var out []provider.Problem
	if len(v.Rejected) > 0 {
		out = append(out, provider.NewProblem(fmt.Sprintf(
			"HTTPRoute %s (generation %d) was rejected by its gateway: %s", route.Name, route.Generation, strings.Join(v.Rejected, "; ")), provider.ErrRejectedByDataPlane))
	}
	if len(v.Pending) > 0 {
		out = append(out, provider.NewProblem(fmt.Sprintf(
			"HTTPRoute %s: waiting for %s to accept generation %d", route.Name, strings.Join(v.Pending, ", "), route.Generation), provider.ErrAwaitingDataPlane))
	}
	return out
}

func parentStatus(route *gatewayv1.HTTPRoute, ref gatewayv1.ParentReference) *gatewayv1.RouteParentStatus {
	want := normalParent(route.Namespace, ref)
	for i := range route.Status.Parents {
		if equality.Semantic.DeepEqual(normalParent(route.Namespace, route.Status.Parents[i].ParentRef), want) {
			return &route.Status.Parents[i]
		}
	}
	return nil
}

// normalParent is a parentRef with its defaults spelled out, for comparing spec with status.
func normalParent(namespace string, ref gatewayv1.ParentReference) gatewayv1.ParentReference {
	out := *ref.DeepCopy()
	if out.Group == nil {
		g := gatewayv1.Group(gatewayv1.GroupName)
		out.Group = &g
	}
	if out.Kind == nil {
		k := gatewayv1.Kind("Gateway")
		out.Kind = &k
	}
	if out.Namespace == nil {
		ns := gatewayv1.Namespace(namespace)
		out.Namespace = &ns
	}
	return out
}

func parentName(namespace string, ref gatewayv1.ParentReference) string {
	p := normalParent(namespace, ref)
	name := fmt.Sprintf("%s %s/%s", *p.Kind, *p.Namespace, p.Name)
	if p.SectionName != nil {
		name += "." + string(*p.SectionName)
	}
	return name
}

// VerdictChanged reports whether the gateways' verdict on a route changed between two versions
// of it: a status change that concerns the policies editing it (their change is applied, or was
// rejected). Other status changes wake nothing.
func (p *Provider) VerdictChanged(old, new client.Object) bool {
	o, ok1 := old.(*gatewayv1.HTTPRoute)
	n, ok2 := new.(*gatewayv1.HTTPRoute)
	if !ok1 || !ok2 {
		return false
	}
	return !equality.Semantic.DeepEqual(VerdictOf(o), VerdictOf(n)) || !equality.Semantic.DeepEqual(controllers(o), controllers(n))
}

func controllers(route *gatewayv1.HTTPRoute) []gatewayv1.GatewayController {
	var out []gatewayv1.GatewayController
	for _, p := range route.Status.Parents {
		out = append(out, p.ControllerName)
	}
	return out
}
