package provider_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/owned"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/restore"
)

// TestAProblemsReasonIsDecidedByTheErrorBehindIt: every problem is made from a typed error, and
// the reason (and what the pass does with the object) follows from that error, wrapped or not.
func TestAProblemsReasonIsDecidedByTheErrorBehindIt(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("Ingress api: %w", err) }
	cases := []struct {
		err                                               error
		reason                                            string
		inTheWay, unreadable, unsupported, awaits, failed bool
	}{
		{wrapped(restore.ErrCorrupt), v1alpha1.ReasonCorruptRecord, false, true, false, false, false},
		{wrapped(&restore.OwnedByOtherError{Owner: "other"}), v1alpha1.ReasonConflict, true, false, false, false, false},
		{wrapped(&owned.NotOursError{}), v1alpha1.ReasonConflict, true, false, false, false, false},
		{wrapped(provider.ErrControlledByOther), v1alpha1.ReasonConflict, true, false, false, false, false},
		{wrapped(provider.ErrForeignCanary), v1alpha1.ReasonConflict, true, false, false, false, false},
		{wrapped(provider.ErrClaimedElsewhere), v1alpha1.ReasonConflict, false, false, false, false, false},
		{wrapped(provider.ErrUnsupported), v1alpha1.ReasonUnsupported, false, false, true, false, false},
		{wrapped(provider.ErrKindNotInstalled), v1alpha1.ReasonUnsupported, false, false, false, false, false},
		{wrapped(provider.ErrRedirectNotTaken), v1alpha1.ReasonUnsupported, false, false, false, false, false},
		{wrapped(provider.ErrRedirectNotAllowed), v1alpha1.ReasonRedirectNotAllowed, false, false, false, false, false},
		{wrapped(provider.ErrTargetNotFound), v1alpha1.ReasonTargetNotFound, false, false, false, false, false},
		{wrapped(provider.ErrAutoscalerNotFound), v1alpha1.ReasonAutoscalerNotFound, false, false, false, false, false},
		{wrapped(provider.ErrRejectedByDataPlane), v1alpha1.ReasonRejectedByGateway, false, false, false, false, false},
		{wrapped(provider.ErrAwaitingDataPlane), v1alpha1.ReasonAwaitingGateway, false, false, false, true, false},
		{wrapped(errors.New("connection refused")), v1alpha1.ReasonApplyFailed, false, false, false, false, true},
	}
	for _, c := range cases {
		t.Run(c.reason+" "+c.err.Error(), func(t *testing.T) {
			p := provider.ProblemOf(c.err)
			if p.Reason != c.reason || p.Message != c.err.Error() {
				t.Errorf("ProblemOf = %q %q, want %q %q", p.Reason, p.Message, c.reason, c.err.Error())
			}
			if n := provider.NewProblem("its own message", c.err); n.Reason != c.reason || n.Message != "its own message" {
				t.Errorf("NewProblem = %q %q", n.Reason, n.Message)
			}
			got := []bool{provider.InTheWay(p), provider.Unreadable(p), provider.Unsupported(p), provider.Awaiting(p), provider.WriteFailed(p)}
			want := []bool{c.inTheWay, c.unreadable, c.unsupported, c.awaits, c.failed}
			for i, name := range []string{"InTheWay", "Unreadable", "Unsupported", "Awaiting", "WriteFailed"} {
				if got[i] != want[i] {
					t.Errorf("%s = %v, want %v", name, got[i], want[i])
				}
			}
		})
	}
	if provider.WriteFailed(provider.Problem{}) {
		t.Error("a problem without an error is no failed write")
	}
}

// TestNoCodeThatDecidesComparesAReason: the manager's pass (controllers, core, pass, the
// providers) decides what to do by matching the error behind a problem, never by comparing a
// reason with a constant or a string. Comparing two reasons (has a condition changed?) is fine.
func TestNoCodeThatDecidesComparesAReason(t *testing.T) {
	root := filepath.Join("..", "..")
	var found []string
	for _, dir := range []string{"controllers", "internal/core", "internal/pass", "internal/provider"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				b, ok := n.(*ast.BinaryExpr)
				if !ok || (b.Op != token.EQL && b.Op != token.NEQ) {
					return true
				}
				if reasonField(b.X) && isReasonValue(b.Y) || reasonField(b.Y) && isReasonValue(b.X) {
					found = append(found, fset.Position(b.Pos()).String())
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) > 0 {
		t.Errorf("a reason compared with a value decides something; match the typed error instead:\n%s", strings.Join(found, "\n"))
	}
}

// reasonField is whether e reads a field named Reason (x.Reason).
func reasonField(e ast.Expr) bool {
	s, ok := e.(*ast.SelectorExpr)
	return ok && s.Sel.Name == "Reason"
}

// isReasonValue is whether e is a reason a comparison could decide by: a v1alpha1.Reason*
// constant or a string literal other than "" (whether there is a reason at all
// decides nothing about which).
func isReasonValue(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		return strings.HasPrefix(e.Sel.Name, "Reason") && e.Sel.Name != "Reason"
	case *ast.BasicLit:
		return e.Kind == token.STRING && e.Value != `""`
	}
	return false
}
