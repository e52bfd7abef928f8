package nscache_test

import (
	"context"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/nscache"
)

// The scoped kind here is Ingress and the marking kind PodTemplate: the cache knows nothing of
// TrafficPolicies.
func TestAScopedKindIsCachedOnlyInTheNamespacesAMarkerIsIn(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	var gauge sync.Map
	c, live, ctx := newCache(t, nil, func(n int) { gauge.Store("namespaces", n) })

	// A handler and an index asked for before any namespace is needed, as a controller asks.
	informer, err := c.GetInformer(ctx, &networkingv1.Ingress{})
	g.Expect(err).NotTo(HaveOccurred())
	early := &names{}
	_, err = informer.AddEventHandler(early.handler())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.IndexField(ctx, &networkingv1.Ingress{}, "host", func(o client.Object) []string {
		var hosts []string
		for _, r := range o.(*networkingv1.Ingress).Spec.Rules {
			hosts = append(hosts, r.Host)
		}
		return hosts
	})).To(Succeed())
	go func() { _ = c.Start(ctx) }()
	g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue())

	for _, ns := range []string{"a", "b", "elsewhere"} {
		g.Expect(live.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		g.Expect(live.Create(ctx, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "shop.example.com"}}}})).To(Succeed())
	}
	across := func() []string {
		var list networkingv1.IngressList
		g.Expect(c.List(ctx, &list, client.MatchingFields{"host": "shop.example.com"})).To(Succeed())
		var out []string
		for _, i := range list.Items {
			out = append(out, i.Namespace+"/"+i.Name)
		}
		return out
	}

	// Nothing is needed yet: nothing is cached, and a read in a namespace is the API server's.
	g.Consistently(across, time.Second).Should(BeEmpty())
	g.Expect(c.Namespaces()).To(BeEmpty())
	var got networkingv1.Ingress
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: "web"}, &got)).To(Succeed())
	g.Expect(got.Spec.Rules).To(HaveLen(1))
	err = c.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: "gone"}, &got)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	g.Expect(c.Namespaces()).To(BeEmpty(), "a stray read caches nothing")

	g.Expect(live.Create(ctx, marker("a"))).To(Succeed())
	g.Eventually(c.Namespaces).Should(Equal([]string{"a"}))
	g.Eventually(early.list).Should(Equal([]string{"a/web"}), "the early handler hears of a's Ingresses")
	g.Eventually(across).Should(Equal([]string{"a/web"}), "listed by the index across namespaces")
	g.Eventually(func() any { v, _ := gauge.Load("namespaces"); return v }).Should(Equal(1))

	// A handler added while a namespace is cached hears of what it holds, then of what comes.
	late := &names{}
	_, err = informer.AddEventHandler(late.handler())
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(late.list).Should(Equal([]string{"a/web"}))
	g.Expect(live.Create(ctx, marker("b"))).To(Succeed())
	g.Eventually(c.Namespaces).Should(Equal([]string{"a", "b"}))
	g.Eventually(late.list).Should(Equal([]string{"a/web", "b/web"}))
	g.Eventually(early.list).Should(Equal([]string{"a/web", "b/web"}))
	g.Eventually(across).Should(Equal([]string{"a/web", "b/web"}))

	// The last marker of a namespace gone, its objects leave the cache; elsewhere is never cached.
	g.Expect(live.Delete(ctx, marker("a"))).To(Succeed())
	g.Eventually(c.Namespaces).Should(Equal([]string{"b"}))
	g.Eventually(across).Should(Equal([]string{"b/web"}))
	g.Expect(informer.HasSynced()).To(BeTrue())
	g.Expect(early.list()).NotTo(ContainElement("elsewhere/web"))
}

// A namespace whose cache stops before it syncs (its marker gone at once) is not waited for: a
// manager starting then would otherwise never sync, and its controllers never start.
func TestANamespaceThatStopsBeforeItSyncsIsNotWaitedFor(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	c, live, ctx := newCache(t, func(ns string, nc cache.Cache) cache.Cache {
		if ns == "slow" {
			return neverSyncs{nc}
		}
		return nc
	}, nil)
	_, err := c.GetInformer(ctx, &networkingv1.Ingress{})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = c.Start(ctx) }()
	g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue())
	g.Expect(live.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "slow"}})).To(Succeed())
	g.Expect(live.Create(ctx, marker("slow"))).To(Succeed())
	g.Eventually(c.Namespaces).Should(Equal([]string{"slow"}))

	synced := make(chan bool, 1)
	go func() { synced <- c.WaitForCacheSync(ctx) }()
	g.Consistently(synced, time.Second).ShouldNot(Receive(), "slow has not synced")
	g.Expect(live.Delete(ctx, marker("slow"))).To(Succeed())
	g.Eventually(synced).Should(Receive(BeTrue()), "slow stopped: nothing is left to wait for")
}

// neverSyncs is a namespace's cache that never says it has synced.
type neverSyncs struct{ cache.Cache }

func (neverSyncs) WaitForCacheSync(ctx context.Context) bool {
	<-ctx.Done()
	return false
}

// newCache starts a control plane and builds (does not start) a cache with Ingress scoped and
// PodTemplate marking; wrap, when set, wraps each namespace's cache.
func newCache(t *testing.T, wrap func(ns string, nc cache.Cache) cache.Cache, changed func(int)) (*nscache.Cache, client.Client, context.Context) {
	t.Helper()
	cp, err := controlplane.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	live, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := cache.Options{Scheme: scheme}
	base, err := cache.New(cp.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nscache.New(base, nscache.Options{
		Scheme: scheme, Scoped: []client.Object{&networkingv1.Ingress{}}, Marker: &corev1.PodTemplate{}, Live: live,
		NewNamespace: func(ns string) (cache.Cache, error) {
			nc, err := nscache.PerNamespace(cp.Config, opts)(ns)
			if err != nil || wrap == nil {
				return nc, err
			}
			return wrap(ns, nc), nil
		},
		Changed: changed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, live, ctx
}

// marker is the object that makes its namespace needed.
func marker(ns string) *corev1.PodTemplate {
	return &corev1.PodTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "policy"},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}}}}
}

// names records the objects a handler was told were added.
type names struct {
	mu   sync.Mutex
	seen []string
}

func (n *names) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		o := obj.(client.Object)
		n.mu.Lock()
		defer n.mu.Unlock()
		if id := o.GetNamespace() + "/" + o.GetName(); !slices.Contains(n.seen, id) {
			n.seen = append(n.seen, id)
		}
	}}
}

func (n *names) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.seen)
	sort.Strings(out)
	return out
}
