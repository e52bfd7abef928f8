// Package nscache is a controller-runtime cache that keeps some kinds only in the namespaces that
// need them. A namespace is needed while it holds an object of the marking kind (a
// TrafficPolicy): its informers of the scoped kinds (targets, autoscalers) start when its first
// such object appears and stop when its last one goes. Every other kind is cached as usual.
//
// A cluster-wide install beside a fleet it never acts on then caches none of that fleet
// (BENCHMARKS.md, e). A policy's first pass may wait for its namespace's informers to sync; a
// lever pulled on an existing policy never does, since its namespace is already cached.
//
// controller-runtime fixes a cache's namespaces when it is built (cache.Options.DefaultNamespaces)
// and has no way to change them while it runs (kubernetes-sigs/controller-runtime#2829), so each
// needed namespace gets a cache of its own, built by controller-runtime, and this one routes to it.
package nscache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Options configure a Cache.
type Options struct {
	// Scheme maps objects to their kinds.
	Scheme *runtime.Scheme
	// Scoped are the kinds cached only in needed namespaces.
	Scoped []client.Object
	// Marker is the kind whose objects make their namespace needed.
	Marker client.Object
	// NewNamespace builds the cache of one namespace (not started): PerNamespace.
	NewNamespace func(namespace string) (cache.Cache, error)
	// Live reads objects of a scoped kind in a namespace that is not needed (nothing there asks
	// for them but a stray read, which is then answered by the API server, never by an empty
	// cache). It only lists: a Get is a list of one name.
	Live client.Reader
	// Changed, when set, is told the needed namespaces each time they change (a gauge).
	Changed func(namespaces int)
}

// PerNamespace builds each namespace's cache as controller-runtime's, with the cluster-wide
// cache's options (scheme, mapper, HTTP client, transforms) over that one namespace. The kinds
// with options of their own (ByObject) are cluster-wide kinds, so none are carried over.
func PerNamespace(cfg *rest.Config, opts cache.Options) func(namespace string) (cache.Cache, error) {
	return func(ns string) (cache.Cache, error) {
		o := opts
		o.DefaultNamespaces = map[string]cache.Config{ns: {}}
		o.ByObject = nil
		return cache.New(cfg, o)
	}
}

// Cache is the cluster-wide cache with the scoped kinds routed to the needed namespaces' caches.
type Cache struct {
	cache.Cache // every kind but the scoped ones

	opts   Options
	scoped map[schema.GroupVersionKind]bool
	// markers is the marking kind's list kind, for a list of one namespace's markers.
	markers schema.GroupVersionKind

	mu         sync.Mutex
	ctx        context.Context // set by Start: the namespaces' caches run until it ends
	namespaces map[string]*namespace
	kinds      map[schema.GroupVersionKind]*kindInformer
	indexes    []fieldIndex
}

// namespace is one needed namespace's cache, running.
type namespace struct {
	cache  cache.Cache
	ctx    context.Context // ends when the namespace's cache stops
	stop   context.CancelFunc
	synced chan struct{} // closed once its informers have synced
}

// fieldIndex is an IndexField call, made again on every namespace's cache.
type fieldIndex struct {
	obj   client.Object
	field string
	fn    client.IndexerFunc
}

// New wraps base (the cluster-wide cache) so that the scoped kinds are cached per needed
// namespace.
func New(base cache.Cache, opts Options) (*Cache, error) {
	c := &Cache{Cache: base, opts: opts, scoped: map[schema.GroupVersionKind]bool{},
		namespaces: map[string]*namespace{}, kinds: map[schema.GroupVersionKind]*kindInformer{}}
	marker, err := apiutil.GVKForObject(opts.Marker, opts.Scheme)
	if err != nil {
		return nil, fmt.Errorf("the kind of %T: %w", opts.Marker, err)
	}
	c.markers = marker.GroupVersion().WithKind(marker.Kind + "List")
	for _, obj := range opts.Scoped {
		gvk, err := apiutil.GVKForObject(obj, opts.Scheme)
		if err != nil {
			return nil, fmt.Errorf("the kind of %T: %w", obj, err)
		}
		c.scoped[gvk] = true
	}
	return c, nil
}

// Namespaces are the namespaces whose scoped kinds are cached, sorted.
func (c *Cache) Namespaces() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.namespaces))
	for ns := range c.namespaces {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// Start follows the marking kind, then runs the cluster-wide cache until ctx ends (the
// namespaces' caches with it).
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	informer, err := c.Cache.GetInformer(ctx, c.opts.Marker, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("following %T: %w", c.opts.Marker, err)
	}
	follow := func(obj any) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if o, ok := obj.(client.Object); ok {
			c.sync(ctx, o.GetNamespace())
		}
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: follow, DeleteFunc: follow,
	}); err != nil {
		return err
	}
	return c.Cache.Start(ctx)
}

// needed says whether a namespace holds an object of the marking kind, as the cluster-wide cache
// has it (its store is updated before its handlers run).
func (c *Cache) needed(ctx context.Context, ns string) (bool, error) {
	list, err := c.markerList()
	if err != nil {
		return false, err
	}
	if err := c.Cache.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	return meta.LenList(list) > 0, nil
}

func (c *Cache) markerList() (client.ObjectList, error) {
	obj, err := c.opts.Scheme.New(c.markers)
	if err != nil {
		return nil, err
	}
	return obj.(client.ObjectList), nil
}

// sync starts or stops a namespace's cache as it is needed or not. It returns the running cache
// (nil when the namespace is not needed).
func (c *Cache) sync(ctx context.Context, ns string) *namespace {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Decided under the lock, so that two syncs of a namespace cannot cross.
	need, err := c.needed(ctx, ns)
	if err != nil {
		logf.FromContext(ctx).Error(err, "reading whether a namespace holds a policy", "namespace", ns)
		return nil
	}
	running := c.namespaces[ns]
	switch {
	case need && running == nil && c.ctx != nil:
		started, err := c.start(ns)
		if err != nil {
			logf.FromContext(ctx).Error(err, "caching a namespace", "namespace", ns)
			return nil
		}
		c.namespaces[ns] = started
		c.changed()
		return started
	case !need && running != nil:
		running.stop()
		delete(c.namespaces, ns)
		for _, k := range c.kinds {
			k.leave(ns)
		}
		c.changed()
		return nil
	}
	return running
}

func (c *Cache) changed() {
	if c.opts.Changed != nil {
		c.opts.Changed(len(c.namespaces))
	}
}

// start builds and starts one namespace's cache with every informer, index and handler asked of
// the scoped kinds so far. Called with mu held.
func (c *Cache) start(ns string) (*namespace, error) {
	nc, err := c.opts.NewNamespace(ns)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(c.ctx)
	for _, i := range c.indexes {
		if err := nc.IndexField(ctx, i.obj, i.field, i.fn); err != nil {
			stop()
			return nil, fmt.Errorf("indexing %T by %s: %w", i.obj, i.field, err)
		}
	}
	for _, k := range c.kinds {
		if err := k.join(ctx, ns, nc); err != nil {
			stop()
			return nil, err
		}
	}
	n := &namespace{cache: nc, ctx: ctx, stop: stop, synced: make(chan struct{})}
	go func() {
		if err := nc.Start(ctx); err != nil && ctx.Err() == nil {
			logf.FromContext(ctx).Error(err, "a namespace's cache stopped", "namespace", ns)
		}
	}()
	go func() {
		if nc.WaitForCacheSync(ctx) {
			close(n.synced)
		}
	}()
	return n, nil
}

// read runs a read of the namespace's cache that ends when the cache stops: a read that waits for
// an informer to sync would otherwise wait forever once the namespace's last policy is gone.
// stopped says the cache stopped before the read ended (its answer is not to be used).
func (n *namespace) read(ctx context.Context, f func(context.Context) error) (stopped bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)()
	err = f(ctx)
	return n.ctx.Err() != nil, err
}

// namespaceFor is the running cache of a namespace, started now when the namespace is needed but
// its marking object's event has not reached Start's handler yet. nil: not needed.
func (c *Cache) namespaceFor(ctx context.Context, ns string) (*namespace, error) {
	c.mu.Lock()
	n, started := c.namespaces[ns], c.ctx != nil
	c.mu.Unlock()
	if !started {
		return nil, &cache.ErrCacheNotStarted{}
	}
	if n != nil {
		return n, nil
	}
	return c.sync(ctx, ns), nil
}

// running are the namespaces' caches now.
func (c *Cache) running() map[string]*namespace {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*namespace, len(c.namespaces))
	for ns, n := range c.namespaces {
		out[ns] = n
	}
	return out
}

func (c *Cache) isScoped(obj runtime.Object) (schema.GroupVersionKind, bool) {
	gvk, err := apiutil.GVKForObject(obj, c.opts.Scheme)
	if err != nil {
		return gvk, false
	}
	gvk.Kind = trimList(gvk.Kind, obj)
	return gvk, c.scoped[gvk]
}

func trimList(kind string, obj runtime.Object) string {
	if _, ok := obj.(client.ObjectList); ok && len(kind) > 4 && kind[len(kind)-4:] == "List" {
		return kind[:len(kind)-4]
	}
	return kind
}

// Get reads a scoped kind from its namespace's cache (the API server's answer when the namespace
// is not needed).
func (c *Cache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := c.isScoped(obj); !ok {
		return c.Cache.Get(ctx, key, obj, opts...)
	}
	n, err := c.namespaceFor(ctx, key.Namespace)
	if err != nil {
		return err
	}
	if n != nil {
		if stopped, err := n.read(ctx, func(ctx context.Context) error { return n.cache.Get(ctx, key, obj, opts...) }); !stopped {
			return err
		}
	}
	return c.liveGet(ctx, key, obj)
}

// liveGet reads one object from the API server by a list of its name: the manager's role lists
// and watches the kinds it caches, and does not get them.
func (c *Cache) liveGet(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	gvk, err := apiutil.GVKForObject(obj, c.opts.Scheme)
	if err != nil {
		return err
	}
	listGVK := gvk.GroupVersion().WithKind(gvk.Kind + "List")
	var list client.ObjectList
	if _, ok := obj.(runtime.Unstructured); ok {
		u := &unstructured.UnstructuredList{}
		u.SetGroupVersionKind(listGVK)
		list = u
	} else {
		made, err := c.opts.Scheme.New(listGVK)
		if err != nil {
			return err
		}
		list = made.(client.ObjectList)
	}
	if err := c.opts.Live.List(ctx, list, client.InNamespace(key.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", key.Name)}); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind)}, key.Name)
	}
	src, err := runtime.DefaultUnstructuredConverter.ToUnstructured(items[0])
	if err != nil {
		return err
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetUnstructuredContent(src)
		return nil
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(src, obj)
}

// List lists a scoped kind from its namespace's cache, or across namespaces from every needed
// namespace's (objects in namespaces that are not needed are not listed: nothing there is
// anyone's target).
func (c *Cache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := c.isScoped(list); !ok {
		return c.Cache.List(ctx, list, opts...)
	}
	var o client.ListOptions
	o.ApplyOptions(opts)
	if o.Namespace != "" {
		n, err := c.namespaceFor(ctx, o.Namespace)
		if err != nil {
			return err
		}
		if n != nil {
			if stopped, err := n.read(ctx, func(ctx context.Context) error { return n.cache.List(ctx, list, opts...) }); !stopped {
				return err
			}
		}
		return c.opts.Live.List(ctx, list, opts...)
	}
	if o.Continue != "" || o.Limit > 0 {
		return errors.New("a list across namespaces of a kind cached per namespace takes no limit or continue")
	}
	running := c.running()
	names := make([]string, 0, len(running))
	for ns := range running {
		names = append(names, ns)
	}
	sort.Strings(names)
	var items []runtime.Object
	for _, ns := range names {
		part, ok := list.DeepCopyObject().(client.ObjectList)
		if !ok {
			return fmt.Errorf("%T is not a list", list)
		}
		n := running[ns]
		stopped, err := n.read(ctx, func(ctx context.Context) error { return n.cache.List(ctx, part, opts...) })
		if stopped {
			continue // its last policy went meanwhile: nothing there is anyone's target now
		}
		if err != nil {
			return fmt.Errorf("listing in %s: %w", ns, err)
		}
		got, err := meta.ExtractList(part)
		if err != nil {
			return err
		}
		items = append(items, got...)
	}
	return meta.SetList(list, items)
}

// IndexField indexes a scoped kind in every namespace's cache, now and later.
func (c *Cache) IndexField(ctx context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	if _, ok := c.isScoped(obj); !ok {
		return c.Cache.IndexField(ctx, obj, field, fn)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.indexes = append(c.indexes, fieldIndex{obj: obj, field: field, fn: fn})
	for _, n := range c.namespaces {
		if err := n.cache.IndexField(ctx, obj, field, fn); err != nil {
			return err
		}
	}
	return nil
}

// GetInformer is, for a scoped kind, one informer over every needed namespace's, now and later:
// its handlers and indexers are added to each namespace's informer as the namespace is cached.
func (c *Cache) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	gvk, ok := c.isScoped(obj)
	if !ok {
		return c.Cache.GetInformer(ctx, obj, opts...)
	}
	return c.kindInformer(ctx, gvk, obj)
}

// GetInformerForKind is GetInformer by kind.
func (c *Cache) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	if !c.scoped[gvk] {
		return c.Cache.GetInformerForKind(ctx, gvk, opts...)
	}
	obj, err := c.opts.Scheme.New(gvk)
	if err != nil {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		obj = u
	}
	return c.kindInformer(ctx, gvk, obj.(client.Object))
}

// RemoveInformer removes a scoped kind's informer from every namespace's cache.
func (c *Cache) RemoveInformer(ctx context.Context, obj client.Object) error {
	gvk, ok := c.isScoped(obj)
	if !ok {
		return c.Cache.RemoveInformer(ctx, obj)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.kinds, gvk)
	for _, n := range c.namespaces {
		if err := n.cache.RemoveInformer(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// WaitForCacheSync waits for the cluster-wide cache and every namespace's cache running now. A
// namespace whose cache stops meanwhile (its last policy went) is not waited for: it never syncs.
func (c *Cache) WaitForCacheSync(ctx context.Context) bool {
	if !c.Cache.WaitForCacheSync(ctx) {
		return false
	}
	for _, n := range c.running() {
		select {
		case <-n.synced:
		case <-n.ctx.Done():
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (c *Cache) kindInformer(ctx context.Context, gvk schema.GroupVersionKind, obj client.Object) (*kindInformer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.kinds[gvk]; k != nil {
		return k, nil
	}
	k := &kindInformer{obj: obj.DeepCopyObject().(client.Object), informers: map[string]cache.Informer{}}
	for ns, n := range c.namespaces {
		if err := k.join(ctx, ns, n.cache); err != nil {
			return nil, err
		}
	}
	c.kinds[gvk] = k
	return k, nil
}

// kindInformer is one scoped kind's informer over every needed namespace.
type kindInformer struct {
	obj client.Object

	mu        sync.Mutex
	informers map[string]cache.Informer
	indexers  []toolscache.Indexers
	handlers  []*registration
}

// registration is a handler added to the kind's informer, and to each namespace's.
type registration struct {
	handler toolscache.ResourceEventHandler
	options toolscache.HandlerOptions

	mu         sync.Mutex
	namespaces map[string]toolscache.ResourceEventHandlerRegistration
}

// join adds a namespace's informer of the kind, with every indexer and handler so far.
func (k *kindInformer) join(ctx context.Context, ns string, nc cache.Cache) error {
	informer, err := nc.GetInformer(ctx, k.obj, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("the informer of %T in %s: %w", k.obj, ns, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, i := range k.indexers {
		if err := informer.AddIndexers(i); err != nil {
			return err
		}
	}
	for _, r := range k.handlers {
		if err := r.join(ns, informer); err != nil {
			return err
		}
	}
	k.informers[ns] = informer
	return nil
}

func (r *registration) join(ns string, informer cache.Informer) error {
	h, err := informer.AddEventHandlerWithOptions(r.handler, r.options)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.namespaces[ns] = h
	r.mu.Unlock()
	return nil
}

func (k *kindInformer) AddEventHandler(handler toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	return k.AddEventHandlerWithOptions(handler, toolscache.HandlerOptions{})
}

func (k *kindInformer) AddEventHandlerWithResyncPeriod(handler toolscache.ResourceEventHandler, resync time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	return k.AddEventHandlerWithOptions(handler, toolscache.HandlerOptions{ResyncPeriod: &resync})
}

func (k *kindInformer) AddEventHandlerWithOptions(handler toolscache.ResourceEventHandler, options toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	r := &registration{handler: handler, options: options, namespaces: map[string]toolscache.ResourceEventHandlerRegistration{}}
	k.mu.Lock()
	defer k.mu.Unlock()
	for ns, informer := range k.informers {
		if err := r.join(ns, informer); err != nil {
			return nil, err
		}
	}
	k.handlers = append(k.handlers, r)
	return r, nil
}

func (k *kindInformer) RemoveEventHandler(handle toolscache.ResourceEventHandlerRegistration) error {
	r, ok := handle.(*registration)
	if !ok {
		return fmt.Errorf("%T is not a registration of this informer", handle)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.handlers = slices.DeleteFunc(k.handlers, func(h *registration) bool { return h == r })
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, h := range r.namespaces {
		if informer := k.informers[ns]; informer != nil {
			if err := informer.RemoveEventHandler(h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *kindInformer) AddIndexers(indexers toolscache.Indexers) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.indexers = append(k.indexers, indexers)
	for _, informer := range k.informers {
		if err := informer.AddIndexers(indexers); err != nil {
			return err
		}
	}
	return nil
}

// HasSynced says whether every namespace's informer has synced (true with none).
func (k *kindInformer) HasSynced() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, informer := range k.informers {
		if !informer.HasSynced() {
			return false
		}
	}
	return true
}

func (k *kindInformer) HasSyncedChecker() toolscache.DoneChecker {
	return syncChecker{k.HasSynced, "informer of " + fmt.Sprintf("%T", k.obj)}
}

// IsStopped is false: the kind's informer lasts as long as the cache, whatever namespaces come
// and go.
func (k *kindInformer) IsStopped() bool { return false }

// leave forgets a namespace's informer (its cache stopped).
func (k *kindInformer) leave(ns string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.informers, ns)
	for _, r := range k.handlers {
		r.mu.Lock()
		delete(r.namespaces, ns)
		r.mu.Unlock()
	}
}

func (r *registration) HasSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.namespaces {
		if !h.HasSynced() {
			return false
		}
	}
	return true
}

func (r *registration) HasSyncedChecker() toolscache.DoneChecker {
	return syncChecker{r.HasSynced, "handler over the namespaces' informers"}
}

// syncChecker polls a HasSynced function: the namespaces behind it change while it is waited on.
type syncChecker struct {
	synced func() bool
	name   string
}

func (s syncChecker) Name() string { return s.name }

func (s syncChecker) Done() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for !s.synced() {
			<-t.C
		}
		close(done)
	}()
	return done
}
