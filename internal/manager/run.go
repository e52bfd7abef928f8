package manager

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmanager "sigs.k8s.io/controller-runtime/pkg/manager"

	"floodgate.dev/floodgate/internal/provider/registered"
)

// DefaultGracefulShutdownTimeout is how long a signalled manager may take to stop.
const DefaultGracefulShutdownTimeout = 30 * time.Second

// ErrShutdownTimeout says the manager did not stop within its graceful shutdown timeout.
var ErrShutdownTimeout = errors.New("the manager did not stop within its graceful shutdown timeout")

// Run runs a manager until signal is done, and returns within the graceful shutdown timeout of
// the signal whatever the libraries do; the caller then exits the process.
//
// A manager signalled before it has started (its caches not synced, as when the API server is
// overloaded) holds no lease and has written nothing: Run returns at once. It does not cancel
// that manager: controller-runtime v0.25.2 loops on a cancelled context without returning while
// its caches start (upstream PR #3440), burning a core until the process is killed. A manager
// signalled once started stops gracefully, releasing its lease at once so another takes over;
// if it has not stopped by the timeout, Run returns ErrShutdownTimeout anyway.
func Run(signal context.Context, cfg *rest.Config, opts Options) error {
	log := logf.FromContext(signal).WithName("run")
	timeout := opts.GracefulShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultGracefulShutdownTimeout
	}
	opts.GracefulShutdownTimeout = timeout
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	// stop cancels the manager; never before it has started (see above).
	stop := func() { cancel() }
	done := make(chan error, 1)
	go func() { done <- start(ctx, cfg, opts, started) }()

	select {
	case err := <-done:
		stop()
		return err
	case <-signal.Done():
	}
	select {
	case <-started:
	default:
		log.Info("signalled before the manager started: stopping at once (it holds no lease and wrote nothing)")
		return nil
	}
	log.Info("signalled: stopping, releasing the leader lease", "timeout", timeout)
	stop()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout + 5*time.Second):
		return fmt.Errorf("%w (%s)", ErrShutdownTimeout, timeout)
	}
}

// start builds and starts a manager with health probes; started is closed once its caches
// have synced (the runnables that do not need leader election start then).
func start(ctx context.Context, cfg *rest.Config, opts Options, started chan<- struct{}) error {
	mgr, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	providers := registered.Providers(mgr.GetClient())
	if err := mgr.AddReadyzCheck("caches-synced", CachesSynced(mgr.GetCache(), providers)); err != nil {
		return fmt.Errorf("adding the ready check: %w", err)
	}
	if err := mgr.Add(ctrlmanager.RunnableFunc(func(ctx context.Context) error {
		releaseListPeak(ctx, mgr.GetCache(), cachedKinds(providers))
		<-ctx.Done()
		return nil
	})); err != nil {
		return err
	}
	if err := mgr.Add(ctrlmanager.RunnableFunc(func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	})); err != nil {
		return err
	}
	logf.FromContext(ctx).Info("starting manager")
	return mgr.Start(ctx)
}

// releaseListPeak returns to the operating system, once every cache has synced, the memory the
// initial lists took: they peak the heap at several times what the caches keep (every object
// decoded before the transform strips it), and the runtime would otherwise hand it back only over
// minutes.
func releaseListPeak(ctx context.Context, c cache.Cache, kinds []client.Object) {
	for cachesSynced(ctx, c, kinds) != nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	debug.FreeOSMemory()
}
