package controllers

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/index"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

// indexTargetNames is a field index over policies by the names of their targets.
const indexTargetNames = ".spec.targetRefs.name"

// indexHosts is the field index of a shed kind's objects by the hosts they name: with the policies
// of every namespace whose targets carry them, it finds, for a host, who else claims it.
func indexHosts(k shed.Kind) string { return ".shed.hosts." + k.GroupKind().String() }

// hostKeys is the indexHosts index function of a kind.
func hostKeys(k shed.Kind) client.IndexerFunc {
	return func(o client.Object) []string { return indexKeys(hostsOf(k.NamedRoutes(o))) }
}

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

// shedKinds are the target kinds the cluster serves whose objects carry traffic by host and path.
func (r *TrafficPolicyReconciler) shedKinds() []shed.Kind {
	return provider.ShedKinds(r.Providers.Kinds(provider.Target))
}

// shedKindOf is the shed kind of an object (nil: none).
func (r *TrafficPolicyReconciler) shedKindOf(obj client.Object) shed.Kind {
	for _, k := range r.shedKinds() {
		if reflect.TypeOf(k.Object()) == reflect.TypeOf(obj) {
			return k
		}
	}
	return nil
}

// answerProblems say what keeps the policy's shed answer from being its own: a route its targets
// carry that a policy of another namespace claims too (the shed server answers it with the
// neutral default, so neither tenant can steer the other's), and a redirect the cluster does not
// allow. The lever itself is applied either way.
func (r *TrafficPolicyReconciler) answerProblems(ctx context.Context, policy *v1alpha1.TrafficPolicy, obs pass.Observation) ([]provider.Problem, error) {
	var problems []provider.Problem
	if msg := r.RedirectHosts.RedirectRefusal(policy); msg != "" {
		problems = append(problems, provider.NewProblem(msg, provider.ErrRedirectNotAllowed))
	}
	carriers, err := r.carriers(ctx)
	if err != nil {
		return problems, err
	}
	claims := shed.RouteClaims(policy, obs.TargetRoutes(carriers), r.RedirectHosts)
	others, err := r.claimsElsewhere(ctx, policy.Namespace, claims, carriers)
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
		problems = append(problems, provider.NewProblem(fmt.Sprintf(
			"route %s is also claimed by policy %s of another namespace: shed requests to it get the neutral answer (503, Retry-After 120), not this policy's",
			c.Route, strings.Join(rivals, ", ")), provider.ErrClaimedElsewhere))
	}
	return problems, nil
}

// carriers say which objects carry traffic, read from the cache as the shed server reads them
// (with FollowClasses, the classes that exist; a Gateway outside the namespaces watched cannot
// be read: its routes count as a catch-all).
func (r *TrafficPolicyReconciler) carriers(ctx context.Context) (shed.Carriers, error) {
	return shed.ReadCarriers(ctx, r.Client, r.shedKinds(), r.FollowClasses)
}

// claimsElsewhere are the claims of policies in other namespaces on hosts overlapping the hosts
// of claims, in any form (shed.Overlap): found through the host indexes (shed.OverlapKeys); a
// catch-all overlaps everything, so its lookup lists every object of each kind. An object that
// carries no traffic (carriers) makes no claim; nil carriers count every object on the routes it
// names.
func (r *TrafficPolicyReconciler) claimsElsewhere(ctx context.Context, namespace string, claims []shed.Claim, carriers shed.Carriers) ([]shed.Claim, error) {
	var out []shed.Claim
	kinds := r.shedKinds()
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
				list := k.NewList()
				if err := r.listByHost(ctx, list, indexHosts(k), key, hostKeys(k)); err != nil {
					return nil, fmt.Errorf("listing %s by host: %w", k.GroupKind(), err)
				}
				items, err := meta.ExtractList(list)
				if err != nil {
					return nil, err
				}
				for _, item := range items {
					obj := item.(client.Object)
					id := k.GroupKind().String() + "/" + obj.GetNamespace() + "/" + obj.GetName()
					if obj.GetNamespace() == namespace || seen[id] {
						continue
					}
					seen[id] = true
					routes := k.NamedRoutes(obj)
					if carriers != nil {
						routes = carriers.Routes(k.GroupKind(), obj)
					}
					if len(routes) == 0 {
						continue
					}
					policies, err := r.policiesTargeting(ctx, k.GroupKind().String(), obj)
					if err != nil {
						return nil, err
					}
					for _, p := range policies {
						out = append(out, shed.RouteClaims(p, routes, r.RedirectHosts)...)
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
	if policy, ok := obj.(*v1alpha1.TrafficPolicy); ok {
		for _, k := range r.shedKinds() {
			targets, err := shed.TargetObjects(ctx, r.Client, policy, k)
			if err != nil {
				logf.FromContext(ctx).Error(err, "reading a policy's targets for a watched change")
				return nil
			}
			for _, t := range targets {
				hosts = append(hosts, hostsOf(k.NamedRoutes(t))...)
			}
		}
	} else if k := r.shedKindOf(obj); k != nil {
		hosts = hostsOf(k.NamedRoutes(obj))
	}
	var claims []shed.Claim
	for _, h := range hosts {
		claims = append(claims, shed.Claim{Route: shed.Route{Host: h}})
	}
	// Every object counts here, served or not: a claim that stops carrying traffic changes the
	// others' answer too.
	others, err := r.claimsElsewhere(ctx, obj.GetNamespace(), claims, nil)
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
