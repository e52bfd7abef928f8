package registered_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The seam owns its kinds: no package outside internal/provider imports a provider package but
// through internal/provider/registered (tests aside, which may drive a provider directly).
func TestNoPackageOutsideTheSeamImportsAProviderPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "floodgate.dev/floodgate/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const seam = "floodgate.dev/floodgate/internal/provider/"
	var offenders []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], seam) {
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, seam) && imp != seam+"registered" {
				offenders = append(offenders, fields[0]+" -> "+imp)
			}
		}
	}
	if len(offenders) > 0 {
		t.Fatalf("packages outside the seam import a provider package:\n  %s", strings.Join(offenders, "\n  "))
	}
}
