// Package traffic proves the levers on real requests through a real proxy: the environment of
// test/trafficenv (an embedded control plane with the real manager, the real shed server binary
// and `kubectl floodgate`, a tiny app in a test host, and Traefik with its
// kubernetesIngressNGINX, kubernetesGateway and kubernetesCRD providers, throttled at 100 ms; the
// default, 2 s, is timed in make bench, not here).
package traffic

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/test/fixtures"
	"floodgate.dev/floodgate/test/trafficenv"
)

var (
	env   *trafficenv.Env
	k8s   client.Client
	host  *fixtures.TestHost
	proxy string // Traefik's web entry point, host:port on loopback
	// rolledShedPod is the address of the second shed server, which no EndpointSlice lists
	// until a test rolls the shed pods to it.
	rolledShedPod string
)

// The environment's names, in the suite's words.
const (
	appPort             = trafficenv.AppPort
	ingressClass        = trafficenv.IngressClass
	traefikGatewayClass = trafficenv.GatewayClass
	redirectHost        = trafficenv.RedirectHost
	// AppHeader marks the app's answers.
	AppHeader = trafficenv.AppHeader
)

func TestMain(m *testing.M) {
	trafficenv.ServeAppIfAsked()
	// FLOODGATE_TEST_LOG=1 shows the manager's log.
	if os.Getenv("FLOODGATE_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	var err error
	env, err = trafficenv.Start(trafficenv.Options{})
	if err != nil {
		env.Close()
		fmt.Fprintln(os.Stderr, "traffic:", err)
		os.Exit(1)
	}
	k8s, host, proxy, rolledShedPod = env.Client, env.Host, env.Proxies[0], env.RolledShedPod
	code := m.Run()
	if code != 0 {
		env.PrintLogs()
	}
	env.Close()
	os.Exit(code)
}

// floodgate runs `kubectl floodgate ARGS` and fails the test when it fails.
func floodgate(t *testing.T, args ...string) string {
	t.Helper()
	out, err := env.Floodgate(args...)
	if err != nil {
		t.Fatalf("kubectl floodgate %s: %v", strings.Join(args, " "), err)
	}
	return out
}
