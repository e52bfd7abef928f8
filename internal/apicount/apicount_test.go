package apicount_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"floodgate.dev/floodgate/internal/apicount"
)

// A dry-run delete carries its dryRun in the DeleteOptions of its body (protobuf, as client-go
// sends it for a built-in kind), not in the query: it is counted as a dry run, never as a delete.
func TestADryRunDeleteIsCountedAsADryRunNotAMutation(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Success"}`))
	}))
	defer upstream.Close()
	counts, kubeconfig, err := apicount.Proxy(&rest.Config{Host: upstream.URL}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	_ = cs.NetworkingV1().Ingresses("edge").Delete(ctx, "canary", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	_ = cs.NetworkingV1().Ingresses("edge").Delete(ctx, "canary", metav1.DeleteOptions{})

	got := counts.Snapshot()
	if got["dry-run delete ingresses"] != 1 || got["delete ingresses"] != 1 {
		t.Fatalf("counted %v, want one dry-run delete and one delete", got)
	}
	if m := apicount.Mutating(got); len(m) != 1 {
		t.Fatalf("mutating: %v, want the one real delete", m)
	}
}
