package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// Field indexes that find, for a host, the policies of every namespace whose targets carry it.
const (
	indexTargetNames    = ".spec.targetRefs.name"
	indexIngressHosts   = ".spec.rules.host"
	indexHTTPRouteHosts = ".spec.hostnames"
)

// ingressGroupKind and httpRouteGroupKind are the kinds' kind.group, as indexSelecting holds it.
const (
	ingressGroupKind   = string(v1alpha1.TargetKindIngress) + "." + v1alpha1.GroupNetworking
	httpRouteGroupKind = string(v1alpha1.TargetKindHTTPRoute) + "." + v1alpha1.GroupGatewayAPI
)

// hostKey is a host as the index keeps it ("*" for a catch-all).
func hostKey(host string) string {
	if host == "" {
		return "*"
	}
	return strings.ToLower(host)
}

func targetNames(o client.Object) []string {
	var names []string
	for _, t := range o.(*v1alpha1.TrafficPolicy).Spec.TargetRefs {
		names = append(names, t.Name)
	}
	return names
}

func ingressHosts(o client.Object) []string {
	var hosts []string
	for _, r := range shed.IngressRoutes(o.(*networkingv1.Ingress)) {
		if k := hostKey(r.Host); !slices.Contains(hosts, k) {
			hosts = append(hosts, k)
		}
	}
	return hosts
}

func httpRouteHosts(o client.Object) []string {
	var hosts []string
	for _, r := range shed.HTTPRouteRoutes(o.(*gatewayv1.HTTPRoute)) {
		if k := hostKey(r.Host); !slices.Contains(hosts, k) {
			hosts = append(hosts, k)
		}
	}
	return hosts
}

// servesHTTPRoutes reports whether the cluster serves Gateway API HTTPRoutes (their hosts are
// then indexed and watched).
func (r *TrafficPolicyReconciler) servesHTTPRoutes() bool {
	_, err := r.Providers.For(provider.Ref{Group: v1alpha1.GroupGatewayAPI, Kind: string(v1alpha1.TargetKindHTTPRoute)})
	return err == nil
}

// answerProblems say what keeps the policy's shed answer from being its own: a route its targets
// carry that a policy of another namespace claims too (the shed server answers it with the
// neutral default, so neither tenant can steer the other's), and a redirect the cluster does not
// allow. The lever itself is applied either way.
func (r *TrafficPolicyReconciler) answerProblems(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs pass.Observation) ([]provider.Problem, error) {
	var problems []provider.Problem
	if msg := r.RedirectHosts.RedirectRefusal(policy); msg != "" {
		problems = append(problems, provider.Problem{Reason: v1alpha1.ReasonRedirectNotAllowed, Message: msg})
	}
	claims := shed.RouteClaims(policy, obs.TargetRoutes(), r.RedirectHosts)
	others, err := r.claimsElsewhere(ctx, policy.Namespace, claims)
	if err != nil {
		return problems, err
	}
	me := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
	_, conflicts := shed.NewTable(append(claims, others...))
	for _, c := range conflicts {
		if !slices.Contains(c.Policies, me) {
			continue
		}
		var rivals []string
		for _, p := range c.Policies {
			if p.Namespace != policy.Namespace {
				rivals = append(rivals, p.String())
			}
		}
		problems = append(problems, provider.Problem{Reason: v1alpha1.ReasonConflict, Message: fmt.Sprintf(
			"route %s is also claimed by policy %s of another namespace: shed requests to it get the neutral answer (503, Retry-After 120), not this policy's",
			c.Route, strings.Join(rivals, ", "))})
	}
	return problems, nil
}

// claimsElsewhere are the claims of policies in other namespaces on the hosts of claims.
func (r *TrafficPolicyReconciler) claimsElsewhere(ctx context.Context, namespace string, claims []shed.Claim) ([]shed.Claim, error) {
	var out []shed.Claim
	seen := map[types.NamespacedName]bool{}
	hosts := map[string]bool{}
	for _, c := range claims {
		if hosts[hostKey(c.Route.Host)] {
			continue
		}
		hosts[hostKey(c.Route.Host)] = true
		var ingresses networkingv1.IngressList
		if err := index.List(ctx, r.Client, &ingresses, indexIngressHosts, hostKey(c.Route.Host), ingressHosts, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing Ingresses by host: %w", err)
		}
		for i := range ingresses.Items {
			ing := &ingresses.Items[i]
			key := client.ObjectKeyFromObject(ing)
			if ing.Namespace == namespace || seen[key] {
				continue
			}
			seen[key] = true
			policies, err := r.policiesTargeting(ctx, ingressGroupKind, ing)
			if err != nil {
				return nil, err
			}
			for _, p := range policies {
				out = append(out, shed.ClaimsOf(p, []*networkingv1.Ingress{ing}, r.RedirectHosts)...)
			}
		}
		if !r.servesHTTPRoutes() {
			continue
		}
		var routes gatewayv1.HTTPRouteList
		if err := index.List(ctx, r.Client, &routes, indexHTTPRouteHosts, hostKey(c.Route.Host), httpRouteHosts, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing HTTPRoutes by host: %w", err)
		}
		for i := range routes.Items {
			route := &routes.Items[i]
			key := types.NamespacedName{Namespace: route.Namespace, Name: "httproute/" + route.Name}
			if route.Namespace == namespace || seen[key] {
				continue
			}
			seen[key] = true
			policies, err := r.policiesTargeting(ctx, httpRouteGroupKind, route)
			if err != nil {
				return nil, err
			}
			for _, p := range policies {
				out = append(out, shed.RouteClaims(p, shed.HTTPRouteRoutes(route), r.RedirectHosts)...)
			}
		}
	}
	return out, nil
}

// mapSharedHosts maps a changed Ingress or policy to the policies of other namespaces whose
// targets carry one of its hosts: a claim appearing or leaving elsewhere changes their answer.
func (r *TrafficPolicyReconciler) mapSharedHosts(ctx context.Context, obj client.Object) []reconcile.Request {
	var hosts []string
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		hosts = ingressHosts(o)
	case *gatewayv1.HTTPRoute:
		hosts = httpRouteHosts(o)
	case *v1alpha1.TrafficPolicy:
		targets, err := shed.TargetIngresses(ctx, r.Client, o)
		if err != nil {
			logf.FromContext(ctx).Error(err, "reading a policy's targets for a watched change")
			return nil
		}
		for _, ing := range targets {
			hosts = append(hosts, ingressHosts(ing)...)
		}
		if r.servesHTTPRoutes() {
			routes, err := shed.TargetHTTPRoutes(ctx, r.Client, o)
			if err != nil {
				logf.FromContext(ctx).Error(err, "reading a policy's targets for a watched change")
				return nil
			}
			for _, route := range routes {
				hosts = append(hosts, httpRouteHosts(route)...)
			}
		}
	}
	var claims []shed.Claim
	for _, h := range hosts {
		if h == "*" {
			h = ""
		}
		claims = append(claims, shed.Claim{Route: shed.Route{Host: h}})
	}
	others, err := r.claimsElsewhere(ctx, obj.GetNamespace(), claims)
	if err != nil {
		logf.FromContext(ctx).Error(err, "finding the policies that share a host")
		return nil
	}
	var out []reconcile.Request
	for _, c := range others {
		req := reconcile.Request{NamespacedName: c.Policy}
		if !slices.Contains(out, req) {
			out = append(out, req)
		}
	}
	return out
}
