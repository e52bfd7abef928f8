package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
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

func targetNames(o client.Object) []string {
	var names []string
	for _, t := range o.(*v1alpha1.TrafficPolicy).Spec.TargetRefs {
		names = append(names, t.Name)
	}
	return names
}

// hostsOf are the (normalized) hosts an object's routes carry ("" for a catch-all).
func hostsOf(routes []shed.Route) []string {
	var hosts []string
	for _, r := range routes {
		if h := shed.NormalizeHost(r.Host); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// indexKeys are the keys an object carrying hosts is indexed under (shed.IndexKeys), so the
// objects of every host form overlapping a host are found by a few lookups (shed.OverlapKeys).
func indexKeys(hosts []string) []string {
	var keys []string
	for _, h := range hosts {
		for _, k := range shed.IndexKeys(h) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func ingressHosts(o client.Object) []string {
	return indexKeys(hostsOf(shed.IngressRoutes(o.(*networkingv1.Ingress))))
}

func httpRouteHosts(o client.Object) []string {
	return indexKeys(hostsOf(shed.HTTPRouteRoutes(o.(*gatewayv1.HTTPRoute))))
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
	served, err := r.served(ctx)
	if err != nil {
		return problems, err
	}
	claims := shed.RouteClaims(policy, obs.TargetRoutes(served), r.RedirectHosts)
	others, err := r.claimsElsewhere(ctx, policy.Namespace, claims, served)
	if err != nil {
		return problems, err
	}
	me := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
	_, conflicts := shed.NewTable(append(claims, others...))
	for _, c := range conflicts {
		if c.Policies[0] != me { // each claim's conflict names its own policy first
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

// served says which objects carry traffic (shed.Served), read from the cache as the shed server
// reads it: with FollowClasses, the IngressClasses that exist; where Gateway API is served,
// the Gateways (one outside the namespaces watched cannot be read: its routes count as a
// catch-all).
func (r *TrafficPolicyReconciler) served(ctx context.Context) (shed.Served, error) {
	return shed.ReadServed(ctx, r.Client, r.FollowClasses, r.servesHTTPRoutes())
}

// hostIndexed is a target kind whose objects are indexed by the hosts they carry.
type hostIndexed struct {
	kind      string // as the error says it
	groupKind string // as indexSelecting holds it
	field     string
	keys      client.IndexerFunc
	newList   func() client.ObjectList
	routes    func(shed.Served, client.Object) []shed.Route
	carries   func(shed.Served, client.Object) bool // whether the object carries traffic
}

// hostIndexedKinds are the target kinds the cluster serves whose hosts a shed answer covers.
func (r *TrafficPolicyReconciler) hostIndexedKinds() []hostIndexed {
	kinds := []hostIndexed{{kind: "Ingresses", groupKind: ingressGroupKind, field: indexIngressHosts, keys: ingressHosts,
		newList: func() client.ObjectList { return &networkingv1.IngressList{} },
		routes: func(_ shed.Served, o client.Object) []shed.Route {
			return shed.IngressRoutes(o.(*networkingv1.Ingress))
		},
		carries: func(s shed.Served, o client.Object) bool { return s.Ingress(o.(*networkingv1.Ingress)) }}}
	if r.servesHTTPRoutes() {
		kinds = append(kinds, hostIndexed{kind: "HTTPRoutes", groupKind: httpRouteGroupKind, field: indexHTTPRouteHosts, keys: httpRouteHosts,
			newList: func() client.ObjectList { return &gatewayv1.HTTPRouteList{} },
			routes:  func(s shed.Served, o client.Object) []shed.Route { return s.HTTPRouteRoutes(o.(*gatewayv1.HTTPRoute)) },
			carries: func(s shed.Served, o client.Object) bool { return s.HTTPRoute(o.(*gatewayv1.HTTPRoute)) }})
	}
	return kinds
}

// claimsElsewhere are the claims of policies in other namespaces on hosts overlapping the hosts
// of claims, in any form (shed.Overlap): found through the host indexes (shed.OverlapKeys); a
// catch-all overlaps everything, so its lookup lists every object of each kind. An object that
// carries no traffic (served) makes no claim.
func (r *TrafficPolicyReconciler) claimsElsewhere(ctx context.Context, namespace string, claims []shed.Claim, served shed.Served) ([]shed.Claim, error) {
	var out []shed.Claim
	kinds := r.hostIndexedKinds()
	seen := map[string]bool{}
	looked := map[string]bool{}
	for _, c := range claims {
		host := shed.NormalizeHost(c.Route.Host)
		if looked[host] {
			continue
		}
		looked[host] = true
		keys, everything := shed.OverlapKeys(host)
		if everything {
			keys = []string{""}
		}
		for _, key := range keys {
			for _, k := range kinds {
				list := k.newList()
				if err := r.listByHost(ctx, list, k.field, key, k.keys); err != nil {
					return nil, fmt.Errorf("listing %s by host: %w", k.kind, err)
				}
				items, err := meta.ExtractList(list)
				if err != nil {
					return nil, err
				}
				for _, item := range items {
					obj := item.(client.Object)
					id := k.groupKind + "/" + obj.GetNamespace() + "/" + obj.GetName()
					if obj.GetNamespace() == namespace || seen[id] || !k.carries(served, obj) {
						continue
					}
					seen[id] = true
					policies, err := r.policiesTargeting(ctx, k.groupKind, obj)
					if err != nil {
						return nil, err
					}
					for _, p := range policies {
						out = append(out, shed.RouteClaims(p, k.routes(served, obj), r.RedirectHosts)...)
					}
				}
			}
		}
	}
	return out, nil
}

// listByHost lists the objects indexed under a host key ("": every object, for a catch-all).
func (r *TrafficPolicyReconciler) listByHost(ctx context.Context, list client.ObjectList, field, key string, fn client.IndexerFunc) error {
	if key == "" {
		return r.Client.List(ctx, list, client.UnsafeDisableDeepCopy)
	}
	return index.List(ctx, r.Client, list, field, key, fn, client.UnsafeDisableDeepCopy)
}

// mapSharedHosts maps a changed Ingress or policy to the policies of other namespaces whose
// targets carry one of its hosts: a claim appearing or leaving elsewhere changes their answer.
func (r *TrafficPolicyReconciler) mapSharedHosts(ctx context.Context, obj client.Object) []reconcile.Request {
	var hosts []string
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		hosts = hostsOf(shed.IngressRoutes(o))
	case *gatewayv1.HTTPRoute:
		hosts = hostsOf(shed.HTTPRouteRoutes(o))
	case *v1alpha1.TrafficPolicy:
		targets, err := shed.TargetIngresses(ctx, r.Client, o)
		if err != nil {
			logf.FromContext(ctx).Error(err, "reading a policy's targets for a watched change")
			return nil
		}
		for _, ing := range targets {
			hosts = append(hosts, hostsOf(shed.IngressRoutes(ing))...)
		}
		if r.servesHTTPRoutes() {
			routes, err := shed.TargetHTTPRoutes(ctx, r.Client, o)
			if err != nil {
				logf.FromContext(ctx).Error(err, "reading a policy's targets for a watched change")
				return nil
			}
			for _, route := range routes {
				hosts = append(hosts, hostsOf(shed.HTTPRouteRoutes(route))...)
			}
		}
	}
	var claims []shed.Claim
	for _, h := range hosts {
		claims = append(claims, shed.Claim{Route: shed.Route{Host: h}})
	}
	// Every object counts here, served or not: a claim that stops carrying traffic changes the
	// others' answer too.
	others, err := r.claimsElsewhere(ctx, obj.GetNamespace(), claims, shed.Served{})
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
