package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTheDeploymentManifestsAreAcceptedByTheAPIServer builds config/default (what `make deploy`
// applies) with kubectl's kustomize and has the API server validate every object.
func TestTheDeploymentManifestsAreAcceptedByTheAPIServer(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	manifests := must(t, "kustomize", filepath.Join(root, "config", "default"))
	for _, kind := range []string{"kind: CustomResourceDefinition", "kind: Deployment", "kind: HorizontalPodAutoscaler",
		"kind: PodDisruptionBudget", "kind: ClusterRole", "name: floodgate-shed", "name: floodgate-manager"} {
		if !strings.Contains(manifests, kind) {
			t.Errorf("config/default has no %q", kind)
		}
	}
	if n := strings.Count(manifests, "image: ghcr.io/floodgate-dev/floodgate:dev"); n != 2 {
		t.Errorf("the manager and the shed server must run the one image set in config/default; found it %d times", n)
	}
	cmd := exec.Command(kubectlBin, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the API server refused config/default: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "(server dry run)"); n < 15 {
		t.Fatalf("only %d objects were accepted:\n%s", n, out)
	}
}

// TestTheNamespacedInstallGrantsNothingClusterWide builds config/namespaced and has the API
// server validate it: RoleBindings only, and both Deployments told which namespaces to watch.
func TestTheNamespacedInstallGrantsNothingClusterWide(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	if out, err := kubectl(t, env.Kubeconfig, "create", "namespace", "edge"); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatal(out)
	}
	manifests := must(t, "kustomize", filepath.Join(root, "config", "namespaced"))
	if strings.Contains(manifests, "kind: ClusterRoleBinding") {
		t.Fatal("the namespaced install binds a role cluster-wide")
	}
	if n := strings.Count(manifests, "--watch-namespaces=edge"); n != 2 {
		t.Fatalf("both the manager and the shed server must watch only the listed namespaces; found the flag %d times", n)
	}
	cmd := exec.Command(kubectlBin, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the API server refused config/namespaced: %v\n%s", err, out)
	}
}
