// Package manager wires the Floodgate controller into a controller-runtime manager: the same
// wiring serves the deployed manager, the envtest suites and drills.
package manager

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/controllers"
	"floodgate.dev/floodgate/internal/arm"
	"floodgate.dev/floodgate/internal/confirm"
	"floodgate.dev/floodgate/internal/gate"
	"floodgate.dev/floodgate/internal/nscache"
	"floodgate.dev/floodgate/internal/pass"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/shed"
)

// Options configure a manager.
type Options struct {
	// Clock the controller plans by; nil is the real clock.
	Clock clock.WithDelayedExecution
	// ClockAdvanced brings every policy back after a warped clock moved (drills, tests).
	ClockAdvanced <-chan event.GenericEvent
	// Shed is where the shed pods are.
	Shed shed.Backend
	// MetricsAddr serves metrics ("0" disables).
	MetricsAddr string
	// HealthAddr serves health probes ("" disables).
	HealthAddr string
	// PprofAddr serves Go's pprof profiles ("" or "0" disables): where a figure in
	// BENCHMARKS.md that misses its target spends its time.
	PprofAddr string
	// LeaderElection turns leader election on.
	LeaderElection bool
	// LeaderElectionNamespace is where the lease lives (when outside a cluster).
	LeaderElectionNamespace string
	// GracefulShutdownTimeout is how long a signalled manager may take to stop (0: 30s).
	GracefulShutdownTimeout time.Duration
	// LeaseDuration, RenewDeadline and RetryPeriod time leader election (0: controller-runtime's
	// defaults, 15s, 10s and 2s). A leader that stops releases its lease at once.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// WatchNamespaces limits the manager to these namespaces (empty: every namespace): its cache,
	// its watches and the RBAC it needs (config/namespaced binds it per namespace). The shed
	// backend's namespace is watched for its EndpointSlices only.
	WatchNamespaces []string
	// SkipNameValidation allows several managers in one process (tests, drills).
	SkipNameValidation bool
	// RedirectHosts are the hosts a shed answer may redirect to (empty: redirects off).
	RedirectHosts shed.RedirectHosts
	// RegexHeaderControllers are the Gateway API controllerNames known to match
	// RegularExpression header matches with RE2/PCRE-compatible syntax (nil: Envoy Gateway's).
	RegexHeaderControllers []string
	// DataPlaneControllers map more controller names onto data planes, over
	// registered.KnownControllers (--data-plane-controllers).
	DataPlaneControllers map[string]provider.DataPlane
	// ProbeKey makes each policy's probe token; the shed server holds the same key (nil: no
	// lever is confirmed by probes).
	ProbeKey []byte
	// ConfirmAddresses are the data planes' addresses probes are sent to, by data plane
	// (ingress-nginx, traefik, ...), for policies whose spec.confirm names none
	// (--confirm-address).
	ConfirmAddresses map[string]string
	// ConfirmClock stamps probes and times their rounds (nil: the real clock). It runs apart
	// from Clock: a drill's warped clock does not move a real proxy.
	ConfirmClock clock.Clock
	// UnguardedGates turns the gate egress guard off: gates may then reach loopback, link-local
	// and the API server's addresses (tests whose webhooks and Prometheus listen on loopback).
	UnguardedGates bool
	// Workers is how many policies are reconciled at once (0: DefaultWorkers).
	Workers int
	// GateReadersPerPolicy bounds how many of one policy's network gates are read at once
	// (0: gate.DefaultPerPolicy).
	GateReadersPerPolicy int
	// APIQPS and APIBurst are Floodgate's own client-side budget for requests to the API server
	// (0: DefaultAPIQPS, DefaultAPIBurst). The APF objects in config/apf bound it on the server.
	APIQPS   float32
	APIBurst int
	// ArmQPS and ArmBurst are the armer's own client-side request budget for its dry runs
	// (0: DefaultArmQPS, DefaultArmBurst): arming never takes the levers' budget.
	ArmQPS   float32
	ArmBurst int
}

// DefaultAPIQPS and DefaultAPIBurst are the client-side request budget unless told otherwise:
// enough for a 1,000-target flip to beat one bulk `kubectl annotate` (BENCHMARKS.md).
const (
	DefaultAPIQPS   = 300
	DefaultAPIBurst = 600
)

// DefaultWorkers is how many policies are reconciled at once unless told otherwise: one
// policy's pass never waits for another's.
const DefaultWorkers = 4

// The armer's request budget by default: a 1,000-target policy is judged within a minute or so,
// and a lever's writes never wait behind it.
const (
	DefaultArmQPS   = 50
	DefaultArmBurst = 100
)

// FieldManager names Floodgate's writes in managedFields.
const FieldManager = "floodgate"

// cachedNamespaces is how many namespaces' targets and autoscalers the manager caches now.
var cachedNamespaces = func() *gaugeInt {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "floodgate_cached_namespaces",
		Help: "Namespaces whose targets and autoscalers the manager caches: those holding a TrafficPolicy.",
	})
	metrics.Registry.MustRegister(g)
	return &gaugeInt{g}
}()

type gaugeInt struct{ prometheus.Gauge }

func (g *gaugeInt) Set(n int) { g.Gauge.Set(float64(n)) }

// DefaultShed is the shed backend that config/ deploys.
var DefaultShed = shed.Backend{Namespace: "floodgate-system", ServiceName: "floodgate-shed", Port: 8080}

// LeaderElectionID names the Lease the managers elect a leader with.
const LeaderElectionID = "floodgate.traffic.floodgate.dev"

// cacheOptions keep in the cache only what a policy may touch, and of each object only what some
// code reads: no managedFields or last-applied configuration on any object; of a Deployment, only
// its replicas and availability (what a workload gate reads); EndpointSlices only where they are
// Floodgate's (labelled as managed by it) or the shed backend's. With WatchNamespaces, only those
// namespaces (and the shed backend's, for its EndpointSlices).
func cacheOptions(opts Options) cache.Options {
	ours, err := labels.Parse(discoveryv1.LabelManagedBy + "=" + shed.ManagedBy)
	if err != nil {
		panic(err) // a constant selector
	}
	var slices map[string]cache.Config
	if len(opts.WatchNamespaces) == 0 {
		slices = map[string]cache.Config{cache.AllNamespaces: {LabelSelector: ours}}
	} else {
		slices = map[string]cache.Config{}
		for _, ns := range opts.WatchNamespaces {
			slices[ns] = cache.Config{LabelSelector: ours}
		}
	}
	// The shed backend's namespace is Floodgate's own: every EndpointSlice there is kept (its
	// Service's, and the companions of any policy living there).
	slices[opts.Shed.Namespace] = cache.Config{}
	out := cache.Options{
		DefaultTransform: StripUnread,
		ByObject: map[client.Object]cache.ByObject{
			&discoveryv1.EndpointSlice{}: {Namespaces: slices},
			&appsv1.Deployment{}:         {Transform: deploymentAvailability},
		},
	}
	if len(opts.WatchNamespaces) > 0 {
		out.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.WatchNamespaces {
			out.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return out
}

// newCache is controller-runtime's cache, with targets and autoscalers cached only in the
// namespaces that hold a policy (nscache): a cluster-wide install does not cache the fleets it
// never acts on. Each namespace's cache has the same options (the transforms that strip what no
// code reads) over that one namespace.
func newCache(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
	base, err := cache.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	live, err := client.New(cfg, client.Options{HTTPClient: opts.HTTPClient, Scheme: opts.Scheme, Mapper: opts.Mapper})
	if err != nil {
		return nil, fmt.Errorf("creating the live reader: %w", err)
	}
	return nscache.New(base, nscache.Options{
		Scheme:       opts.Scheme,
		Scoped:       registered.ScopedKinds(),
		Marker:       &v1alpha1.TrafficPolicy{},
		NewNamespace: nscache.PerNamespace(cfg, opts),
		Live:         live,
		Changed:      cachedNamespaces.Set,
	})
}

// cachedKinds are the kinds the controller reads through the cache: its own, the shed's and the
// gates', and every provider's kind the cluster serves.
func cachedKinds(providers *provider.Registry) []client.Object {
	out := []client.Object{&v1alpha1.TrafficPolicy{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &appsv1.Deployment{}}
	for _, p := range slices.Concat(providers.Kinds(provider.Target), providers.Kinds(provider.Autoscaler)) {
		out = append(out, p.Object())
	}
	return out
}

// CachesSynced is a ready check that fails until the cache of every kind the controller reads has
// synced: a manager is not ready while it would act on a partial view. It starts the informers it
// asks about, so a standby replica warms its cache before it leads.
func CachesSynced(c cache.Cache, providers *provider.Registry) healthz.Checker {
	kinds := cachedKinds(providers)
	return func(req *http.Request) error { return cachesSynced(req.Context(), c, kinds) }
}

func cachesSynced(ctx context.Context, c cache.Cache, kinds []client.Object) error {
	for _, obj := range kinds {
		informer, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("the cache of %T: %w", obj, err)
		}
		if !informer.HasSynced() {
			return fmt.Errorf("the cache of %T has not synced yet", obj)
		}
	}
	return nil
}

// StripUnread drops from a cached object what no code reads: managedFields and the
// last-applied-configuration annotation (often the largest part of an object). Writes are
// patches computed between two copies of the cached object, so they never touch either.
func StripUnread(in any) (any, error) {
	if obj, ok := in.(metav1.Object); ok {
		obj.SetManagedFields(nil)
		if ann := obj.GetAnnotations(); ann != nil {
			if _, ok := ann[corev1.LastAppliedConfigAnnotation]; ok {
				delete(ann, corev1.LastAppliedConfigAnnotation)
				obj.SetAnnotations(ann)
			}
		}
	}
	return in, nil
}

// deploymentAvailability keeps of a Deployment what a workload gate reads: its identity,
// desired replicas, generation and availability.
func deploymentAvailability(in any) (any, error) {
	d, ok := in.(*appsv1.Deployment)
	if !ok {
		return in, nil
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name, Namespace: d.Namespace, UID: d.UID, ResourceVersion: d.ResourceVersion,
			Generation: d.Generation, Labels: d.Labels, DeletionTimestamp: d.DeletionTimestamp,
		},
		Spec: appsv1.DeploymentSpec{Replicas: d.Spec.Replicas},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: d.Status.ObservedGeneration, Replicas: d.Status.Replicas,
			ReadyReplicas: d.Status.ReadyReplicas, AvailableReplicas: d.Status.AvailableReplicas,
			UpdatedReplicas: d.Status.UpdatedReplicas,
		},
	}, nil
}

func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// New builds a manager with the TrafficPolicy controller registered.
func New(ctx context.Context, cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "0"
	}
	// Floodgate's own request budget: controller-runtime leaves client-side limits off.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.APIQPS, opts.APIBurst
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultAPIQPS
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultAPIBurst
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme.New(),
		Cache:                         cacheOptions(opts),
		NewCache:                      newCache,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		PprofBindAddress:              opts.PprofAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       nonZero(opts.GracefulShutdownTimeout),
		LeaseDuration:                 nonZero(opts.LeaseDuration),
		RenewDeadline:                 nonZero(opts.RenewDeadline),
		RetryPeriod:                   nonZero(opts.RetryPeriod),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.SkipNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	// Every write carries the field manager "floodgate", so GitOps tools can be told to leave
	// Floodgate's fields alone (Argo CD: ignoreDifferences.managedFieldsManagers).
	c := client.WithFieldOwner(mgr.GetClient(), FieldManager)
	var guard *gate.EgressGuard
	if !opts.UnguardedGates {
		guard = &gate.EgressGuard{Denied: gate.APIServerAddresses(ctx, cfg.Host)}
		if host := os.Getenv("KUBERNETES_SERVICE_HOST"); host != "" {
			guard.Denied = append(guard.Denied, gate.APIServerAddresses(ctx, host)...)
		}
	}
	// Kinds whose CRD is not installed (KEDA, Gateway API) are not watched: a watch on a missing
	// CRD keeps a manager from starting. A policy naming one is told which CRD is missing.
	// The providers' settings, one set for the controller and the armer alike (a preview reads
	// the same from floodgate-config). Classes are cluster-scoped: a namespaced install reads none.
	settings := registered.Settings{RegexHeaderControllers: opts.RegexHeaderControllers, RedirectHosts: opts.RedirectHosts,
		DataPlaneControllers: opts.DataPlaneControllers, ReadClasses: len(opts.WatchNamespaces) == 0}
	providers := registered.Providers(c, settings)
	gates := &gate.Reader{Client: c, HTTP: gate.NewHTTPClient(guard), Autoscalers: providers}
	for _, gk := range providers.Missing() {
		logf.FromContext(ctx).Info("kind not installed: not watched", "kind", gk.String())
	}
	readings := make(chan event.GenericEvent, 1024)
	poller := gate.NewPoller(ctx, gates, opts.Clock, opts.GateReadersPerPolicy, func(key types.NamespacedName) {
		select {
		case readings <- event.GenericEvent{Object: &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		case <-ctx.Done():
		}
	})
	confirmWakes := make(chan event.GenericEvent, 1024)
	confirmClock := opts.ConfirmClock
	if confirmClock == nil {
		confirmClock = clock.RealClock{}
	}
	metrics := controllers.NewMetrics(opts.Clock)
	confirmer := confirm.New(ctx, confirmClock, gate.Dial(guard, confirm.ProbeTimeout), func(key types.NamespacedName) {
		select {
		case confirmWakes <- event.GenericEvent{Object: &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		case <-ctx.Done():
		}
	})
	confirmer.Confirmed = metrics.LeverConfirmed
	armCfg := rest.CopyConfig(cfg)
	armCfg.QPS, armCfg.Burst = opts.ArmQPS, opts.ArmBurst
	if armCfg.QPS <= 0 {
		armCfg.QPS = DefaultArmQPS
	}
	if armCfg.Burst <= 0 {
		armCfg.Burst = DefaultArmBurst
	}
	armClient, err := client.New(armCfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		Cache: &client.CacheOptions{Reader: mgr.GetCache()}})
	if err != nil {
		return nil, fmt.Errorf("creating the armer's client: %w", err)
	}
	armClient = client.WithFieldOwner(armClient, FieldManager)
	shedBackend := shed.Backend{Namespace: opts.Shed.Namespace, ServiceName: opts.Shed.ServiceName, Port: opts.Shed.Port, Live: mgr.GetAPIReader()}
	verdicts := make(chan event.GenericEvent, 1024)
	armer := arm.New(&pass.Pass{Client: armClient, Providers: registered.Providers(armClient, settings), Shed: shedBackend},
		mgr.GetCache(), 0, func(key types.NamespacedName) {
			select {
			case verdicts <- event.GenericEvent{Object: &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
			case <-ctx.Done():
			}
		})
	if err := mgr.Add(armer); err != nil {
		return nil, fmt.Errorf("adding the armer: %w", err)
	}
	r := &controllers.TrafficPolicyReconciler{
		Client:           c,
		APIReader:        mgr.GetAPIReader(),
		Clock:            opts.Clock,
		ClockAdvanced:    opts.ClockAdvanced,
		Recorder:         mgr.GetEventRecorder("floodgate"),
		Providers:        providers,
		Shed:             shedBackend,
		RedirectHosts:    opts.RedirectHosts,
		FollowClasses:    settings.ReadClasses,
		Gates:            gates,
		GatePoller:       poller,
		GateReadings:     readings,
		Metrics:          metrics,
		Armer:            armer,
		ArmVerdicts:      verdicts,
		Confirmer:        confirmer,
		ConfirmWakes:     confirmWakes,
		ProbeKey:         opts.ProbeKey,
		ConfirmAddresses: opts.ConfirmAddresses,
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	if err := r.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: workers}); err != nil {
		return nil, fmt.Errorf("setting up the TrafficPolicy controller: %w", err)
	}
	return mgr, nil
}
