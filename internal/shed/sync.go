package shed

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/nscache"
)

// IsCompanion says whether an object is a companion a TrafficPolicy controls (a canary, a shed
// Service): never a target.
func IsCompanion(obj metav1.Object) bool {
	owner := metav1.GetControllerOf(obj)
	return owner != nil && owner.Kind == "TrafficPolicy" && strings.HasPrefix(owner.APIVersion, v1alpha1.GroupVersion.Group+"/")
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

// SyncOptions are what SyncTable follows.
type SyncOptions struct {
	// RedirectHosts are the hosts a shed answer may redirect to.
	RedirectHosts RedirectHosts
	// Namespaces limit the policies and targets followed (empty: cluster-wide).
	Namespaces []string
	// Kinds are the target kinds whose objects carry traffic by host and path, each told by its
	// provider (registered.ShedKinds).
	Kinds []Kind
	// KindCheckEvery is how often a cluster that does not serve one of the kinds (Gateway API
	// HTTPRoutes) is asked again whether it does (0: DefaultKindCheckEvery), so a CRD installed
	// after the shed server starts is followed without a restart.
	KindCheckEvery time.Duration
}

// DefaultKindCheckEvery is how often the shed server asks whether a kind is served yet.
const DefaultKindCheckEvery = 30 * time.Second

// SyncTable keeps the server's table in step with every TrafficPolicy and its targets of each
// kind (a kind whose CRD is not installed once it is), cluster-wide (or in the namespaces
// listed), until ctx ends. Changes are coalesced: the table is rebuilt once per burst.
func SyncTable(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, s *Server, o SyncOptions) error {
	log := logf.FromContext(ctx)
	opts := cache.Options{Scheme: scheme}
	var err error
	if len(o.Namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	// One HTTP client and REST mapper for the cluster-wide cache and every namespace's.
	if opts.HTTPClient, err = rest.HTTPClientFor(cfg); err != nil {
		return fmt.Errorf("creating the HTTP client: %w", err)
	}
	if opts.Mapper, err = apiutil.NewDynamicRESTMapper(cfg, opts.HTTPClient); err != nil {
		return fmt.Errorf("creating the REST mapper: %w", err)
	}
	base, err := cache.New(cfg, opts)
	if err != nil {
		return fmt.Errorf("creating the cache: %w", err)
	}
	live, err := client.New(cfg, client.Options{Scheme: scheme, HTTPClient: opts.HTTPClient, Mapper: opts.Mapper})
	if err != nil {
		return fmt.Errorf("creating the live reader: %w", err)
	}
	// Targets are cached only in the namespaces that hold a policy, as the manager caches them.
	var scoped []client.Object
	for _, k := range o.Kinds {
		scoped = append(scoped, k.Object())
	}
	c, err := nscache.New(base, nscache.Options{
		Scheme: scheme, Scoped: scoped, Marker: &v1alpha1.TrafficPolicy{}, Live: live,
		NewNamespace: nscache.PerNamespace(cfg, opts),
	})
	if err != nil {
		return err
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
	// Cluster-scoped objects (classes) are followed by a cluster-wide shed server only.
	clusterWide := len(o.Namespaces) == 0
	if err := follow(&v1alpha1.TrafficPolicy{}); err != nil {
		return err
	}
	var mu sync.Mutex
	var followed []Kind // the kinds the cluster serves, followed
	followKind := func(k Kind) error {
		for _, obj := range append([]client.Object{k.Object()}, k.Follows(clusterWide)...) {
			if err := follow(obj); err != nil {
				return err
			}
		}
		mu.Lock()
		followed = append(followed, k)
		mu.Unlock()
		return nil
	}
	var missing []Kind
	for _, k := range o.Kinds {
		if !serves(cfg, k) {
			missing = append(missing, k)
			continue
		}
		if err := followKind(k); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		every := cmp.Or(o.KindCheckEvery, DefaultKindCheckEvery)
		for _, k := range missing {
			log.Info("this cluster does not serve a target kind: its hosts get the neutral answer until it does; asking again periodically",
				"kind", k.GroupKind().String(), "every", every)
		}
		go func() {
			if !c.WaitForCacheSync(ctx) {
				return
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for len(missing) > 0 {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				missing = slices.DeleteFunc(missing, func(k Kind) bool {
					if !serves(cfg, k) {
						return false
					}
					if err := followKind(k); err != nil {
						log.Error(err, "a target kind is served now, but cannot be watched; asking again", "kind", k.GroupKind().String())
						return false
					}
					log.Info("a target kind is served now: following it", "kind", k.GroupKind().String())
					poke()
					return true
				})
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
				mu.Lock()
				kinds := slices.Clone(followed)
				mu.Unlock()
				rebuild(ctx, c, s, o.RedirectHosts, kinds, clusterWide)
			}
		}
	}()
	return c.Start(ctx)
}

// serves reports whether the cluster serves a kind (a watch on a kind the cluster does not serve
// keeps the cache from starting).
func serves(cfg *rest.Config, k Kind) bool {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return false
	}
	_, err = mapper.RESTMapping(k.GroupKind())
	return err == nil
}

// rebuild builds the table again from every policy and the targets of each kind it names or
// selects, on the routes each carries (Carrier): an Ingress of a class that does not exist, a
// route no Gateway accepted, makes no claim.
func rebuild(ctx context.Context, c client.Reader, s *Server, hosts RedirectHosts, kinds []Kind, clusterWide bool) {
	log := logf.FromContext(ctx)
	var policies v1alpha1.TrafficPolicyList
	if err := c.List(ctx, &policies); err != nil {
		log.Error(err, "listing policies")
		return
	}
	carriers, err := ReadCarriers(ctx, c, kinds, clusterWide)
	if err != nil {
		log.Error(err, "reading what carries traffic")
		return
	}
	var claims []Claim
	for i := range policies.Items {
		p := &policies.Items[i]
		for _, k := range kinds {
			targets, err := TargetObjects(ctx, c, p, k)
			if err != nil {
				log.Error(err, "reading a policy's targets", "policy", client.ObjectKeyFromObject(p))
				return
			}
			for _, obj := range targets {
				claims = append(claims, RouteClaims(p, carriers.Routes(k.GroupKind(), obj), hosts)...)
			}
		}
	}
	table, conflicts := NewTable(claims)
	s.SetTable(table)
	for _, conflict := range conflicts {
		log.Info("route claimed from several namespaces: answered with the neutral default", "route", conflict.Route.String(), "policies", conflict.Policies)
	}
	log.V(1).Info("shed table rebuilt", "policies", len(policies.Items), "routes", table.size)
}
