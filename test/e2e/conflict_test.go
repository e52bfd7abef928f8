package e2e

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/apicount"
)

// writeBeforeTheLever serves the API server through a proxy that, just before the plugin's first
// patch of the policy reaches it, makes write happen: the policy has moved between the plugin's
// read and its write. It returns the proxy's kubeconfig.
func writeBeforeTheLever(t *testing.T, ns string, write func()) string {
	t.Helper()
	var once atomic.Bool
	_, kubeconfig, err := apicount.ProxyWith(env.ControlPlane.Config, t.TempDir(), func(r *http.Request) {
		if r.Method == http.MethodPatch && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/trafficpolicies/api") && once.CompareAndSwap(false, true) {
			write()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// A lever is never refused because the controller wrote the policy's status while the command
// ran: the spec and the pending request are as read, so it is made again on a fresh read.
func TestALeverIsMadeAgainWhenOnlyTheControllerMovedThePolicyMeanwhile(t *testing.T) {
	ns := fixture(t, nil)
	kubeconfig := writeBeforeTheLever(t, ns, func() {
		p := getPolicy(t, ns)
		// A status write, as the controller's after any pass.
		patch := []byte(`{"status":{"targetCount":` + strconv.Itoa(int(p.Status.TargetCount)+100) + `}}`)
		if err := k8s.Status().Patch(context.Background(), p, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Error(err)
		}
	})
	out, err := kubectl(t, kubeconfig, "floodgate", "shed", "api", "-n", ns, "--reason", "herd")
	if err != nil {
		t.Fatalf("shed refused after a status write meanwhile: %v\n%s", err, out)
	}
	if p := getPolicy(t, ns); p.Spec.Action != v1alpha1.ActionShedAll {
		t.Fatalf("action %s after shed:\n%s", p.Spec.Action, out)
	}
}

// Someone else's change of the spec while the command ran is never overwritten: the command says
// the policy changed and asks to run it again.
func TestALeverIsNotMadeOverSomeoneElsesChangeMeanwhile(t *testing.T) {
	ns := fixture(t, nil)
	kubeconfig := writeBeforeTheLever(t, ns, func() {
		p := getPolicy(t, ns)
		patch := []byte(`{"spec":{"allowRegions":["NZ"]}}`)
		if err := k8s.Patch(context.Background(), p, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Error(err)
		}
	})
	out, err := kubectl(t, kubeconfig, "floodgate", "shed", "api", "-n", ns, "--reason", "herd")
	if err == nil || !strings.Contains(out, `trafficpolicy "api" changed while this command ran; run it again`) {
		t.Fatalf("shed over someone else's change: %v\n%s", err, out)
	}
	if p := getPolicy(t, ns); p.Spec.Action != v1alpha1.ActionNormal || len(p.Spec.AllowRegions) != 1 {
		t.Fatalf("the other change was overwritten: action %s, allowRegions %v", p.Spec.Action, p.Spec.AllowRegions)
	}
}
