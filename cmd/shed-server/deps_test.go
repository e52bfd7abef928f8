package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTheImagesBinariesDoNotLinkEnvtest: the manager and the shed server are what a cluster
// runs; the embedded control plane (envtest) belongs to drills and tests only.
func TestTheImagesBinariesDoNotLinkEnvtest(t *testing.T) {
	for _, pkg := range []string{"floodgate.dev/floodgate/cmd/shed-server", "floodgate.dev/floodgate/cmd/manager", "floodgate.dev/floodgate/cmd/kubectl-floodgate"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "controller-runtime/pkg/envtest") || strings.HasSuffix(dep, "internal/controlplane") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
