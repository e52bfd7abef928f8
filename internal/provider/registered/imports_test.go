package registered

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCodeOutsideTheSeamImportsAProviderPackage: the providers are reached through the seam
// (internal/provider) and this registry only; nothing else in the binaries imports a provider's
// package. (Test code still does, where a suite proves a provider on its real parts.)
func TestNoCodeOutsideTheSeamImportsAProviderPackage(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = filepath.Join("..", "..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const seam = "floodgate.dev/floodgate/internal/provider"
	isProvider := func(p string) bool { return strings.HasPrefix(p, seam+"/") && p != seam+"/registered" }
	var found []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == seam || strings.HasPrefix(fields[0], seam+"/") {
			continue
		}
		for _, imp := range fields[1:] {
			if isProvider(imp) {
				found = append(found, fields[0]+" imports "+imp)
			}
		}
	}
	if len(found) > 0 {
		t.Fatalf("packages outside the seam import a provider:\n  %s", strings.Join(found, "\n  "))
	}
}
