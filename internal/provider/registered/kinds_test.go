package registered

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"floodgate.dev/floodgate/internal/provider"
)

// TestNoCodeOutsideTheProvidersNamesAProvidersKind: outside internal/provider, no code of the
// binaries imports a provider kind's Go types or names one of those kinds in a string, so none
// can switch on it: what a kind means is its provider's. The API (its enum of kinds and their
// defaults), the scheme (the types the clients decode) and test/ (suites proving a provider on
// its real parts) are the exceptions.
func TestNoCodeOutsideTheProvidersNamesAProvidersKind(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	kindTypes := []string{"k8s.io/api/networking/v1", "k8s.io/api/autoscaling/v", "sigs.k8s.io/gateway-api/apis/"}
	kindNames := map[string]bool{}
	reg := NewRegistry(nil)
	for _, p := range append(reg.Kinds(provider.Target), reg.Kinds(provider.Autoscaler)...) {
		kindNames[p.GroupKind().Kind] = true
	}
	for _, k := range []string{"Ingress", "IngressClass", "HTTPRoute", "Gateway", "GatewayClass", "HorizontalPodAutoscaler", "ScaledObject"} {
		kindNames[k] = true
	}
	exempt := []string{"internal/provider", "api", "test", "bin", ".git"}
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			for _, e := range exempt {
				if rel == e {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, k := range kindTypes {
				if strings.HasPrefix(p, k) {
					found = append(found, rel+" imports "+p)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && kindNames[s] {
					found = append(found, rel+" names kind "+s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("code outside the providers knows a provider's kind:\n  %s", strings.Join(found, "\n  "))
	}
}
