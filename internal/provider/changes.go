package provider

// ObjectChange is what a write would do to one object, for previews (`--dry-run`): the parts a
// user owns (labels, annotations, spec) before and after; nil when the object is absent.
type ObjectChange struct {
	Kind   string
	Name   string
	Before map[string]any
	After  map[string]any
}

// UserView keeps the parts of an unstructured object a preview shows: labels, annotations, spec.
func UserView(obj map[string]any) map[string]any {
	if obj == nil {
		return nil
	}
	view := map[string]any{}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := map[string]any{}
		for _, k := range []string{"labels", "annotations"} {
			if v, ok := md[k]; ok {
				m[k] = v
			}
		}
		if len(m) > 0 {
			view["metadata"] = m
		}
	}
	if spec, ok := obj["spec"]; ok {
		view["spec"] = spec
	}
	return view
}
