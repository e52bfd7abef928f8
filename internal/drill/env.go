package drill

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/controlplane"
	"floodgate.dev/floodgate/internal/manager"
	"floodgate.dev/floodgate/internal/provider/registered"
	"floodgate.dev/floodgate/internal/scheme"
	"floodgate.dev/floodgate/internal/warp"
)

// Env is one drill's world: an embedded control plane, the manager in-process on a warped clock.
type Env struct {
	ControlPlane *controlplane.ControlPlane
	Client       client.Client
	Clock        *warp.Clock
	Kubeconfig   string
	// MetricsAddr is where the manager serves /metrics ("" or "0": nowhere).
	MetricsAddr string
	options     EnvOptions
	dir         string
	stop        context.CancelFunc
	done        chan error
}

// EnvOptions are what an environment's manager runs with beyond the defaults.
type EnvOptions struct {
	// MetricsAddr is where the manager serves /metrics ("" or "0": nowhere).
	MetricsAddr string
	// Settings are the manager's provider settings (its redirect hosts, regex-header and
	// data-plane controllers); the environment's floodgate-config says the same, for previews.
	Settings registered.Settings
	// UnguardedGates lets gates reach loopback (suites whose webhooks and Prometheus listen there).
	UnguardedGates bool
	// ShedPodAddresses are the addresses the shed pods' EndpointSlice lists, where a suite runs real
	// shed servers (default: two addresses no one listens on).
	ShedPodAddresses []string
	// ProbeKey and ConfirmAddresses confirm levers by probes through a real data plane (suites
	// that run one); their rounds go on the real clock, not the drill's.
	ProbeKey         []byte
	ConfirmAddresses map[string]string
}

// StartEnv starts the control plane (with Floodgate's CRDs and those in the files named) and the
// manager, with the clock at start.
func StartEnv(start time.Time, crdFiles ...string) (*Env, error) {
	return StartEnvWith(start, EnvOptions{}, crdFiles...)
}

// StartEnvWith starts an environment as StartEnv does, its manager run with o: the one way the
// drills and the test suites start a control plane and a manager.
func StartEnvWith(start time.Time, o EnvOptions, crdFiles ...string) (*Env, error) {
	cp, err := controlplane.Start(crdFiles...)
	if err != nil {
		return nil, err
	}
	e := &Env{ControlPlane: cp, Clock: warp.New(start), MetricsAddr: o.MetricsAddr, options: o}
	if err := e.init(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) init() error {
	var err error
	if e.dir, err = os.MkdirTemp("", "floodgate-drill-"); err != nil {
		return err
	}
	if e.Kubeconfig, err = e.ControlPlane.Kubeconfig(e.dir); err != nil {
		return err
	}
	if e.Client, err = client.New(e.ControlPlane.Config, client.Options{Scheme: scheme.New()}); err != nil {
		return err
	}
	if err := e.shedPods(); err != nil {
		return fmt.Errorf("creating the shed backend's endpoints: %w", err)
	}
	// The previews read the manager's settings as an install keeps them.
	if err := e.Client.Create(context.Background(), registered.ConfigMap(manager.DefaultShed.Namespace, e.options.Settings)); err != nil {
		return fmt.Errorf("creating the manager's settings: %w", err)
	}
	return e.StartManager()
}

// StartManager starts the manager in-process on the drill clock.
func (e *Env) StartManager() error {
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := manager.New(ctx, e.ControlPlane.Config, manager.Options{
		Clock: e.Clock, ClockAdvanced: e.Clock.Subscribe(), Shed: manager.DefaultShed, SkipNameValidation: true,
		MetricsAddr:            e.MetricsAddr,
		RedirectHosts:          e.options.Settings.RedirectHosts,
		RegexHeaderControllers: e.options.Settings.RegexHeaderControllers,
		DataPlaneControllers:   e.options.Settings.DataPlaneControllers,
		UnguardedGates:         e.options.UnguardedGates,
		ProbeKey:               e.options.ProbeKey,
		ConfirmAddresses:       e.options.ConfirmAddresses,
	})
	if err != nil {
		cancel()
		return err
	}
	e.stop, e.done = cancel, make(chan error, 1)
	go func() { e.done <- mgr.Start(ctx) }()
	return nil
}

// StopManager stops the manager (the control plane keeps running) and returns what its Start
// returned.
func (e *Env) StopManager() error {
	if e.stop == nil {
		return nil
	}
	e.stop()
	err := <-e.done
	e.stop = nil
	return err
}

func (e *Env) shedPods() error {
	return ShedPodsAt(context.Background(), e.Client, e.options.ShedPodAddresses...)
}

// ShedPodsSlice is the name of the shed pods' EndpointSlice ShedPods creates.
var ShedPodsSlice = manager.DefaultShed.ServiceName + "-pods"

// ShedPods stands in for the shed Deployment's pods (envtest runs no pods): their namespace and
// their Service's EndpointSlice, which Floodgate mirrors into each policy's namespace.
func ShedPods(ctx context.Context, c client.Client) error { return ShedPodsAt(ctx, c) }

// ShedPodsAt is ShedPods with the pods at addresses (none: 10.96.0.11 and 10.96.0.10, listed out
// of order, as the copy in each policy's namespace is sorted).
func ShedPodsAt(ctx context.Context, c client.Client, addresses ...string) error {
	if len(addresses) == 0 {
		addresses = []string{"10.96.0.11", "10.96.0.10"}
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultShed.Namespace}}); err != nil {
		return err
	}
	endpoints := make([]discoveryv1.Endpoint, 0, len(addresses))
	for _, a := range addresses {
		endpoints = append(endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return c.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: ShedPodsSlice, Namespace: manager.DefaultShed.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: manager.DefaultShed.ServiceName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   endpoints,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(manager.DefaultShed.Port)}},
	})
}

// Close stops the manager and the control plane.
func (e *Env) Close() {
	_ = e.StopManager()
	_ = e.ControlPlane.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}
