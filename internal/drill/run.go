package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/mattn/go-shellwords"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/internal/plugin"
	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/provider/registered"
)

// DefaultStart is when a drill's clock starts unless the file says otherwise.
var DefaultStart = time.Date(2024, 11, 12, 9, 0, 0, 0, time.UTC)

// Row is one line of the timeline.
type Row struct {
	Wall    time.Duration
	At      time.Time
	Kind    string
	Title   string
	Output  []string
	Changes []string
	Failure string
	// State is what the drill's policy had in force after the step (nil: no policy), from
	// StateAt (the drill clock after the step: an advance moves it).
	State   *State
	StateAt time.Time
	// Clusters are, in a drill across clusters, each cluster's state after the step (State is
	// the first cluster's).
	Clusters map[string]*State
}

// Result is one drill's outcome.
type Result struct {
	Name        string
	Description string
	// Start is the drill clock's start.
	Start     time.Time
	Rows      []Row
	Failed    bool
	Wall      time.Duration
	DrillTime time.Duration
	// Clusters are a drill's clusters, in order (none: one cluster).
	Clusters []string
}

// Options change how a drill's environment runs.
type Options struct {
	// MetricsAddr serves the manager's /metrics there (a dashboard's queries read a drill).
	MetricsAddr string
	// Linger keeps the manager running this long after the last step (so a scraper sees the
	// end state).
	Linger time.Duration
}

// Run runs a drill in its own environment and prints the timeline as it goes.
func Run(ctx context.Context, f *File, out io.Writer) (*Result, error) {
	return RunWith(ctx, f, out, Options{})
}

// RunWith runs a drill as Run does, with options.
func RunWith(ctx context.Context, f *File, out io.Writer, opts Options) (*Result, error) {
	start := DefaultStart
	if f.Start != nil {
		start = f.Start.Time
	}
	if len(f.Clusters) > 0 {
		return runFleet(ctx, f, out, start)
	}
	env, err := StartEnvWith(start, EnvOptions{MetricsAddr: opts.MetricsAddr}, f.CRDs...)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if f.Gateway != nil {
		// The drill plays the gateway: it reports on each HTTPRoute's current generation.
		gwCtx, stop := context.WithCancel(ctx)
		defer stop()
		go registered.PlayGateways(gwCtx, env.Client, f.Gateway.ControllerName, 20*time.Millisecond)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(env.ControlPlane.Config)
	if err != nil {
		return nil, err
	}
	r := &runner{env: env, f: f, out: out, began: time.Now(), start: start, res: &Result{Name: f.Name},
		kinds: providerKinds(env.Client), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
	res, err := r.run(ctx)
	time.Sleep(opts.Linger)
	return res, err
}

type runner struct {
	env      *Env
	f        *File
	out      io.Writer
	began    time.Time
	start    time.Time
	res      *Result
	setup    map[string]map[string]any // user view right after setup, by object key
	watched  map[string]bool           // namespaces whose objects the timeline follows
	snapshot map[string]map[string]string
	// kinds are the providers' kinds the control plane serves: what the timeline follows.
	kinds []kind
	// mapper names the kind of a reference without an apiVersion, from the control plane's
	// discovery.
	mapper meta.RESTMapper
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	fmt.Fprintf(r.out, "Drill: %s\n", r.f.Name)
	if r.f.Description != "" {
		fmt.Fprintf(r.out, "  %s\n", strings.TrimSpace(r.f.Description))
	}
	fmt.Fprintf(r.out, "  %-8s  %-8s  %s\n", "WALL", "DRILL", "STEP")
	if err := r.doSetup(ctx); err != nil {
		return nil, err
	}
	r.res.Description, r.res.Start = strings.TrimSpace(r.f.Description), r.start
	for i, s := range r.f.Steps {
		row := r.step(ctx, s)
		row.State, row.StateAt = r.state(ctx), r.env.Clock.Now()
		r.emit(row)
		if row.Failure != "" {
			r.res.Failed = true
			for _, skipped := range r.f.Steps[i+1:] {
				r.emit(Row{Wall: time.Since(r.began), At: r.env.Clock.Now(), Kind: "skip", Title: describe(skipped)})
			}
			break
		}
	}
	r.res.Wall = time.Since(r.began)
	r.res.DrillTime = r.env.Clock.Now().Sub(r.start)
	verdict := "PASS"
	if r.res.Failed {
		verdict = "FAIL"
	}
	fmt.Fprintf(r.out, "%s  %s: %d steps, %s wall, %s drill time\n\n", verdict, r.f.Name, len(r.f.Steps),
		r.res.Wall.Round(10*time.Millisecond), r.res.DrillTime)
	return r.res, nil
}

func (r *runner) doSetup(ctx context.Context) error {
	r.setup, r.watched = map[string]map[string]any{}, map[string]bool{}
	objs := append([]*unstructured.Unstructured(nil), r.f.setup...)
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].GetKind() == "Namespace" && objs[j].GetKind() != "Namespace" })
	var names []string
	for _, o := range objs {
		if o.GetNamespace() != "" {
			r.watched[o.GetNamespace()] = true
		}
	}
	for ns := range r.watched {
		nsObj := &unstructured.Unstructured{}
		nsObj.SetAPIVersion("v1")
		nsObj.SetKind("Namespace")
		nsObj.SetName(ns)
		if err := r.env.Client.Create(ctx, nsObj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("setup: namespace %s: %w", ns, err)
		}
	}
	for _, o := range objs {
		obj := o.DeepCopy()
		if err := r.env.Client.Create(ctx, obj); err != nil {
			if obj.GetKind() == "Namespace" && apierrors.IsAlreadyExists(err) {
				continue
			}
			return fmt.Errorf("setup: %s %s: %w", obj.GetKind(), objKey(obj), err)
		}
		r.setup[obj.GetKind()+" "+objKey(obj)] = provider.UserView(withoutFloodgate(obj).Object)
		names = append(names, obj.GetKind()+" "+objKey(obj))
	}
	r.snapshot = r.take(ctx)
	row := Row{Wall: time.Since(r.began), At: r.env.Clock.Now(), Kind: "setup", Title: fmt.Sprintf("%d objects", len(names)), Output: names}
	row.Changes = r.settle(ctx)
	row.State, row.StateAt = r.state(ctx), r.env.Clock.Now()
	r.emit(row)
	return nil
}

func (r *runner) step(ctx context.Context, s Step) Row {
	row := Row{Wall: time.Since(r.began), At: r.env.Clock.Now(), Title: describe(s)}
	var err error
	switch {
	case s.Run != "":
		row.Kind = "run"
		row.Output, err = r.runCommand(ctx, s.Run)
		switch {
		case s.ExpectError != "" && err == nil:
			err = fmt.Errorf("the command succeeded; expected it to fail with %q", s.ExpectError)
		case s.ExpectError != "" && !strings.Contains(err.Error(), s.ExpectError):
			err = fmt.Errorf("the command failed with %q; expected %q", err, s.ExpectError)
		case s.ExpectError != "":
			row.Output = append(row.Output, "error (expected): "+err.Error())
			err = nil
		case err != nil:
			row.Output = append(row.Output, "error: "+err.Error())
		}
	case s.Patch != nil:
		row.Kind = "patch"
		err = r.patch(ctx, s.Patch)
	case s.Apply != nil:
		row.Kind = "apply"
		err = r.apply(ctx, s.Apply)
	case s.Delete != nil:
		row.Kind = "delete"
		err = r.env.Client.Delete(ctx, r.object(*s.Delete))
	case s.Advance != nil:
		row.Kind = "advance"
		r.env.Clock.Advance(s.Advance.Duration)
	case s.Expect != nil:
		row.Kind = "expect"
		took, failure := r.expect(ctx, s.Expect)
		row.Title += fmt.Sprintf("  (%s)", took.Round(time.Millisecond))
		row.Failure = failure
		return row
	}
	if err != nil {
		row.Failure = err.Error()
	}
	row.Changes = r.settle(ctx)
	return row
}

func describe(s Step) string {
	prefix := ""
	if s.Name != "" {
		prefix = s.Name + ": "
	}
	switch {
	case s.Run != "":
		return prefix + s.Run
	case s.Patch != nil:
		sub := ""
		if s.Patch.Subresource != "" {
			sub = " (" + s.Patch.Subresource + ")"
		}
		if s.Patch.Operations != nil {
			return prefix + fmt.Sprintf("patch --type=json %s %s%s %s", s.Patch.Kind, refKey(s.Patch.Ref), sub, provider.CompactJSON(s.Patch.Operations))
		}
		return prefix + fmt.Sprintf("patch %s %s%s %s", s.Patch.Kind, refKey(s.Patch.Ref), sub, provider.CompactJSON(s.Patch.Patch))
	case s.Apply != nil:
		return prefix + fmt.Sprintf("apply %d objects", len(s.Apply))
	case s.Delete != nil:
		return prefix + fmt.Sprintf("delete %s %s", s.Delete.Kind, refKey(*s.Delete))
	case s.Advance != nil:
		return prefix + "advance the clock " + s.Advance.Duration.String()
	case s.Expect != nil:
		return prefix + describeExpect(s.Expect)
	}
	return prefix
}

func (r *runner) runCommand(ctx context.Context, line string) ([]string, error) {
	args, err := shellwords.Parse(line)
	if err != nil {
		return nil, err
	}
	switch {
	case len(args) >= 2 && args[0] == "kubectl" && args[1] == "floodgate":
		args = args[2:]
	case len(args) >= 1 && args[0] == "kubectl-floodgate":
		args = args[1:]
	default:
		return nil, fmt.Errorf("run: only `kubectl floodgate ...` commands run in a drill (use patch for raw changes): %q", line)
	}
	var out bytes.Buffer
	cmd := plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out}, r.env.Clock)
	cmd.SetArgs(append(args, "--kubeconfig", r.env.Kubeconfig))
	err = cmd.ExecuteContext(ctx)
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	return lines, err
}

func (r *runner) patch(ctx context.Context, p *Patch) error {
	obj := r.object(p.Ref)
	kind, body := types.MergePatchType, any(p.Patch)
	if p.Operations != nil {
		kind, body = types.JSONPatchType, p.Operations
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if p.Subresource == "status" {
		return r.env.Client.Status().Patch(ctx, obj, client.RawPatch(kind, data))
	}
	return r.env.Client.Patch(ctx, obj, client.RawPatch(kind, data), client.FieldOwner("on-call"))
}

func (r *runner) apply(ctx context.Context, objs []map[string]any) error {
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: o}
		if u.GetNamespace() != "" {
			r.watched[u.GetNamespace()] = true
		}
		if err := r.env.Client.Patch(ctx, u, client.Apply, client.FieldOwner("floodgate-drill"), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), objKey(u), err)
		}
	}
	return nil
}

func (r *runner) object(ref Ref) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(r.gvk(ref))
	u.SetNamespace(ref.Namespace)
	u.SetName(ref.Name)
	return u
}

// gvk is the kind a reference names: at its apiVersion, else as the control plane serves it (a
// provider's kind at the version its provider reads; any other at its group's preferred
// version), else a core kind.
func (r *runner) gvk(ref Ref) schema.GroupVersionKind {
	if ref.APIVersion != "" {
		return schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
	}
	if ref.Kind == gvkPolicy.Kind {
		return gvkPolicy
	}
	if k, ok := kindNamed(r.kinds, "", ref.Kind); ok {
		return k.gvk
	}
	if gvk, err := r.mapper.KindFor(schema.GroupVersionResource{Resource: strings.ToLower(ref.Kind)}); err == nil {
		return gvk
	}
	return schema.GroupVersionKind{Version: "v1", Kind: ref.Kind}
}

func objKey(o client.Object) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

func refKey(r Ref) string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

func withoutFloodgate(obj *unstructured.Unstructured) *unstructured.Unstructured {
	c := obj.DeepCopy()
	ann := c.GetAnnotations()
	for k := range ann {
		if strings.HasPrefix(k, "traffic.floodgate.dev/") {
			delete(ann, k)
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	c.SetAnnotations(ann)
	return c
}
