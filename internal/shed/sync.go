package shed

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// IsCompanion says whether an object is a companion a TrafficPolicy controls (a canary, a shed
// Service): never a target.
func IsCompanion(obj metav1.Object) bool {
	owner := metav1.GetControllerOf(obj)
	return owner != nil && owner.Kind == "TrafficPolicy" && strings.HasPrefix(owner.APIVersion, v1alpha1.GroupVersion.Group+"/")
}

// ClaimsOf are a policy's claims on the routes its targets carry, with its answer. targets are
// the policy's target Ingresses that exist.
func ClaimsOf(policy *v1alpha1.TrafficPolicy, targets []*networkingv1.Ingress, hosts RedirectHosts) []Claim {
	var routes []Route
	for _, ing := range targets {
		routes = append(routes, IngressRoutes(ing)...)
	}
	return RouteClaims(policy, routes, hosts)
}

// RouteClaims are a policy's claims on routes, with its answer.
func RouteClaims(policy *v1alpha1.TrafficPolicy, routes []Route, hosts RedirectHosts) []Claim {
	key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
	answer := AnswerOf(policy, hosts)
	out := make([]Claim, 0, len(routes))
	for _, r := range routes {
		out = append(out, Claim{Policy: key, Route: r, Response: answer})
	}
	return out
}

// TargetHTTPRoutes reads a policy's target HTTPRoutes that exist, in its namespace: those it
// names and those its targetSelector selects.
func TargetHTTPRoutes(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy) ([]*gatewayv1.HTTPRoute, error) {
	var out []*gatewayv1.HTTPRoute
	seen := map[string]bool{}
	if sel := policy.Spec.TargetSelector; sel != nil && sel.SelectsKind(v1alpha1.GroupGatewayAPI, string(v1alpha1.TargetKindHTTPRoute)) {
		selector, err := sel.LabelSelector()
		if err != nil {
			return nil, fmt.Errorf("targetSelector of %s/%s: %w", policy.Namespace, policy.Name, err)
		}
		var list gatewayv1.HTTPRouteList
		if err := c.List(ctx, &list, client.InNamespace(policy.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return nil, fmt.Errorf("listing the HTTPRoutes %s/%s selects: %w", policy.Namespace, policy.Name, err)
		}
		for i := range list.Items {
			seen[list.Items[i].Name] = true
			out = append(out, &list.Items[i])
		}
	}
	for _, ref := range policy.Spec.TargetRefs {
		if seen[ref.Name] || ref.Kind != v1alpha1.TargetKindHTTPRoute {
			continue
		}
		var route gatewayv1.HTTPRoute
		err := c.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &route)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading HTTPRoute %s/%s: %w", policy.Namespace, ref.Name, err)
		}
		if err == nil {
			out = append(out, &route)
		}
	}
	return out, nil
}

// TargetIngresses reads a policy's target Ingresses that exist, in its namespace: those it
// names and those its targetSelector selects (never a companion a TrafficPolicy controls).
func TargetIngresses(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy) ([]*networkingv1.Ingress, error) {
	var out []*networkingv1.Ingress
	seen := map[string]bool{}
	if sel := policy.Spec.TargetSelector; sel != nil && sel.SelectsKind(v1alpha1.GroupNetworking, string(v1alpha1.TargetKindIngress)) {
		selector, err := sel.LabelSelector()
		if err != nil {
			return nil, fmt.Errorf("targetSelector of %s/%s: %w", policy.Namespace, policy.Name, err)
		}
		var list networkingv1.IngressList
		if err := c.List(ctx, &list, client.InNamespace(policy.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return nil, fmt.Errorf("listing the Ingresses %s/%s selects: %w", policy.Namespace, policy.Name, err)
		}
		for i := range list.Items {
			if IsCompanion(&list.Items[i]) {
				continue
			}
			seen[list.Items[i].Name] = true
			out = append(out, &list.Items[i])
		}
	}
	for _, ref := range policy.Spec.TargetRefs {
		if seen[ref.Name] {
			continue
		}
		if ref.Kind != "" && ref.Kind != v1alpha1.TargetKindIngress {
			continue
		}
		var ing networkingv1.Ingress
		err := c.Get(ctx, client.ObjectKey{Namespace: policy.Namespace, Name: ref.Name}, &ing)
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("reading Ingress %s/%s: %w", policy.Namespace, ref.Name, err)
		}
		if err == nil {
			out = append(out, &ing)
		}
	}
	return out, nil
}

// SyncOptions are what SyncTable follows.
type SyncOptions struct {
	// RedirectHosts are the hosts a shed answer may redirect to.
	RedirectHosts RedirectHosts
	// Namespaces limit the policies and targets followed (empty: cluster-wide).
	Namespaces []string
	// KindCheckEvery is how often a cluster that does not serve Gateway API HTTPRoutes is asked
	// again whether it does (0: DefaultKindCheckEvery), so a CRD installed after the shed server
	// starts is followed without a restart.
	KindCheckEvery time.Duration
}

// DefaultKindCheckEvery is how often the shed server asks whether HTTPRoutes are served yet.
const DefaultKindCheckEvery = 30 * time.Second

// SyncTable keeps the server's table in step with every TrafficPolicy and its target Ingresses
// and HTTPRoutes (where Gateway API is installed, or once it is), cluster-wide (or in the
// namespaces listed), until ctx ends. Changes are coalesced: the table is rebuilt once per burst.
func SyncTable(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, s *Server, o SyncOptions) error {
	log := logf.FromContext(ctx)
	opts := cache.Options{Scheme: scheme}
	if len(o.Namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the cache: %w", err)
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	follow := func(obj client.Object) error {
		informer, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { poke() },
			UpdateFunc: func(any, any) { poke() },
			DeleteFunc: func(any) { poke() },
		})
		return err
	}
	// IngressClasses are cluster-scoped: followed by a cluster-wide shed server only (namespaced,
	// every Ingress counts as carrying traffic).
	classes := len(o.Namespaces) == 0
	watched := []client.Object{&v1alpha1.TrafficPolicy{}, &networkingv1.Ingress{}}
	if classes {
		watched = append(watched, &networkingv1.IngressClass{})
	}
	for _, obj := range watched {
		if err := follow(obj); err != nil {
			return err
		}
	}
	var routes atomic.Bool
	// HTTPRoutes and their Gateways (whose listeners' hostnames a route without hostnames covers).
	followRoutes := func() error {
		for _, obj := range []client.Object{&gatewayv1.HTTPRoute{}, &gatewayv1.Gateway{}} {
			if err := follow(obj); err != nil {
				return err
			}
		}
		return nil
	}
	if servesHTTPRoutes(cfg) {
		if err := followRoutes(); err != nil {
			return err
		}
		routes.Store(true)
	} else {
		every := cmp.Or(o.KindCheckEvery, DefaultKindCheckEvery)
		log.Info("this cluster serves no Gateway API HTTPRoutes: a route's host gets the neutral answer until it does; asking again periodically", "every", every)
		go func() {
			if !c.WaitForCacheSync(ctx) {
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if !servesHTTPRoutes(cfg) {
					continue
				}
				if err := followRoutes(); err != nil {
					log.Error(err, "Gateway API HTTPRoutes are served now, but cannot be watched; asking again")
					continue
				}
				routes.Store(true)
				log.Info("Gateway API HTTPRoutes are served now: following them")
				poke()
				return
			}
		}()
	}
	go func() {
		if !c.WaitForCacheSync(ctx) {
			return
		}
		poke()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				rebuild(ctx, c, s, o.RedirectHosts, routes.Load(), classes)
			}
		}
	}()
	return c.Start(ctx)
}

// servesHTTPRoutes reports whether the cluster serves Gateway API HTTPRoutes (a watch on a kind
// the cluster does not serve keeps the cache from starting).
func servesHTTPRoutes(cfg *rest.Config) bool {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return false
	}
	_, err = mapper.RESTMapping(gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute").GroupKind())
	return err == nil
}

// rebuild builds the table again from every policy and the targets it names or selects that carry
// traffic (Served): an Ingress of a class that does not exist (classes: IngressClasses are
// followed), a route no Gateway accepted, makes no claim.
func rebuild(ctx context.Context, c client.Reader, s *Server, hosts RedirectHosts, httpRoutes, classes bool) {
	log := logf.FromContext(ctx)
	var policies v1alpha1.TrafficPolicyList
	if err := c.List(ctx, &policies); err != nil {
		log.Error(err, "listing policies")
		return
	}
	served, err := ReadServed(ctx, c, classes, httpRoutes)
	if err != nil {
		log.Error(err, "reading what carries traffic")
		return
	}
	var claims []Claim
	for i := range policies.Items {
		p := &policies.Items[i]
		targets, err := TargetIngresses(ctx, c, p)
		if err != nil {
			log.Error(err, "reading a policy's targets", "policy", client.ObjectKeyFromObject(p))
			return
		}
		targets = slices.DeleteFunc(targets, func(ing *networkingv1.Ingress) bool { return !served.Ingress(ing) })
		claims = append(claims, ClaimsOf(p, targets, hosts)...)
		if !httpRoutes {
			continue
		}
		routes, err := TargetHTTPRoutes(ctx, c, p)
		if err != nil {
			log.Error(err, "reading a policy's targets", "policy", client.ObjectKeyFromObject(p))
			return
		}
		for _, route := range routes {
			if !served.HTTPRoute(route) {
				continue
			}
			claims = append(claims, RouteClaims(p, served.HTTPRouteRoutes(route), hosts)...)
		}
	}
	table, conflicts := NewTable(claims)
	s.SetTable(table)
	for _, conflict := range conflicts {
		log.Info("route claimed from several namespaces: answered with the neutral default", "route", conflict.Route.String(), "policies", conflict.Policies)
	}
	log.V(1).Info("shed table rebuilt", "policies", len(policies.Items), "routes", table.size)
}
