package shed

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/api/v1alpha1"
)

// ClaimsOf are a policy's claims on the routes its targets carry, with its answer. targets are
// the policy's target Ingresses that exist.
func ClaimsOf(policy *v1alpha1.TrafficPolicy, targets []*networkingv1.Ingress, hosts RedirectHosts) []Claim {
	key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
	answer := AnswerOf(policy, hosts)
	var out []Claim
	for _, ing := range targets {
		for _, r := range IngressRoutes(ing) {
			out = append(out, Claim{Policy: key, Route: r, Response: answer})
		}
	}
	return out
}

// TargetIngresses reads a policy's target Ingresses that exist, in its namespace.
func TargetIngresses(ctx context.Context, c client.Reader, policy *v1alpha1.TrafficPolicy) ([]*networkingv1.Ingress, error) {
	var out []*networkingv1.Ingress
	for _, ref := range policy.Spec.TargetRefs {
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

// SyncTable keeps the server's table in step with every TrafficPolicy and its target Ingresses,
// cluster-wide (or in the namespaces listed), until ctx ends. Changes are coalesced: the table is
// rebuilt once per burst.
func SyncTable(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, s *Server, hosts RedirectHosts, namespaces []string) error {
	opts := cache.Options{Scheme: scheme}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
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
	for _, obj := range []client.Object{&v1alpha1.TrafficPolicy{}, &networkingv1.Ingress{}} {
		informer, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
		if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { poke() },
			UpdateFunc: func(any, any) { poke() },
			DeleteFunc: func(any) { poke() },
		}); err != nil {
			return err
		}
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
				rebuild(ctx, c, s, hosts)
			}
		}
	}()
	return c.Start(ctx)
}

func rebuild(ctx context.Context, c client.Reader, s *Server, hosts RedirectHosts) {
	log := logf.FromContext(ctx)
	var policies v1alpha1.TrafficPolicyList
	if err := c.List(ctx, &policies); err != nil {
		log.Error(err, "listing policies")
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
		claims = append(claims, ClaimsOf(p, targets, hosts)...)
	}
	table, conflicts := NewTable(claims)
	s.SetTable(table)
	for _, conflict := range conflicts {
		log.Info("route claimed from several namespaces: answered with the neutral default", "route", conflict.Route.String(), "policies", conflict.Policies)
	}
	log.V(1).Info("shed table rebuilt", "policies", len(policies.Items), "routes", len(table.routes))
}
