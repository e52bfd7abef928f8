package plugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"floodgate.dev/floodgate/api/v1alpha1"
	"floodgate.dev/floodgate/internal/scheme"
)

// Fleet is how one command reaches many clusters: the contexts (--context a,b,c, --all-contexts,
// or --clusters-file with --cluster-selector), how many at once, each one's timeout, and the
// safe order (--canary-cluster first, --one-by-one).
type Fleet struct {
	AllContexts    bool
	ClustersFile   string
	Selector       string
	Parallel       int
	ClusterTimeout time.Duration
	OneByOne       bool
	Canary         string

	// contexts are the clusters this command runs on (nil: the one of --context or the
	// kubeconfig's current context, as kubectl).
	contexts []string
}

// The flags of Fleet, which a command run on one cluster of the fleet does not take again.
var fleetFlags = []string{"all-contexts", "clusters-file", "cluster-selector", "parallel", "cluster-timeout", "one-by-one", "canary-cluster"}

func (f *Fleet) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&f.AllContexts, "all-contexts", false, "run on every context of the kubeconfig, one row per cluster")
	fs.StringVar(&f.ClustersFile, "clusters-file", "", "run on the contexts this file lists (clusters: [{context: syd, labels: {region: apac}}]), those --cluster-selector selects")
	fs.StringVar(&f.Selector, "cluster-selector", "", "a label selector over the clusters of --clusters-file (region=apac,tier!=canary)")
	fs.IntVar(&f.Parallel, "parallel", 4, "how many clusters at once")
	fs.DurationVar(&f.ClusterTimeout, "cluster-timeout", 2*time.Minute, "how long one cluster may take (its --wait included)")
	fs.BoolVar(&f.OneByOne, "one-by-one", false, "one cluster at a time, in the order given, stopping at the first that fails")
	fs.StringVar(&f.Canary, "canary-cluster", "", "this cluster first, alone; the others only once it succeeded")
}

// ClustersFile is the file --clusters-file reads.
type ClustersFile struct {
	Clusters []struct {
		// Context is the kubeconfig context of the cluster.
		Context string `json:"context"`
		// Labels are what --cluster-selector selects on.
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"clusters"`
}

// resolve finds the fleet's contexts; none means one cluster, as kubectl.
func (f *Fleet) resolve(cf *genericclioptions.ConfigFlags) error {
	var contexts []string
	switch {
	case f.AllContexts:
		raw, err := cf.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return fmt.Errorf("reading kubeconfig: %w", err)
		}
		for name := range raw.Contexts {
			contexts = append(contexts, name)
		}
		slices.Sort(contexts)
	case f.ClustersFile != "":
		var err error
		if contexts, err = f.fromFile(); err != nil {
			return err
		}
	case cf.Context != nil && strings.Contains(*cf.Context, ","):
		for _, c := range strings.Split(*cf.Context, ",") {
			if c = strings.TrimSpace(c); c != "" && !slices.Contains(contexts, c) {
				contexts = append(contexts, c)
			}
		}
	default:
		if f.Canary != "" || f.OneByOne {
			return fmt.Errorf("--canary-cluster and --one-by-one order several clusters: name them with --context a,b,c, --all-contexts or --clusters-file")
		}
		return nil
	}
	if len(contexts) == 0 {
		return fmt.Errorf("no cluster to run on (--all-contexts, --clusters-file %q, --cluster-selector %q)", f.ClustersFile, f.Selector)
	}
	if f.Canary != "" {
		if !slices.Contains(contexts, f.Canary) {
			return fmt.Errorf("--canary-cluster %s is not among the clusters (%s)", f.Canary, strings.Join(contexts, ", "))
		}
		contexts = append([]string{f.Canary}, slices.DeleteFunc(contexts, func(c string) bool { return c == f.Canary })...)
	}
	if f.Parallel < 1 {
		f.Parallel = 1
	}
	f.contexts = contexts
	return nil
}

func (f *Fleet) fromFile() ([]string, error) {
	data, err := os.ReadFile(f.ClustersFile)
	if err != nil {
		return nil, fmt.Errorf("--clusters-file: %w", err)
	}
	var file ClustersFile
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("--clusters-file %s: %w", f.ClustersFile, err)
	}
	sel, err := labels.Parse(f.Selector)
	if err != nil {
		return nil, fmt.Errorf("--cluster-selector %q: %w", f.Selector, err)
	}
	var out []string
	for i, c := range file.Clusters {
		if c.Context == "" {
			return nil, fmt.Errorf("--clusters-file %s: cluster %d names no context", f.ClustersFile, i)
		}
		if sel.Matches(labels.Set(c.Labels)) && !slices.Contains(out, c.Context) {
			out = append(out, c.Context)
		}
	}
	return out, nil
}

// ClusterResult is what one cluster of the fleet did.
type ClusterResult struct {
	Context string
	// Output is what the command printed on that cluster.
	Output string
	Err    error
	Took   time.Duration
	// Started is false for a cluster the safe order kept the command from (a canary or an
	// earlier cluster failed).
	Started bool
	// Policy is the policy as read after the command (nil: it could not be read).
	Policy *v1alpha1.TrafficPolicy
}

// fanOut runs the command on every cluster of the fleet, as the same command line with
// --context NAME, and prints each cluster's output, then one row per cluster: the action in
// force, the phase, Armed, Confirmed, the time taken and the error. It fails, naming them, when
// any cluster did not succeed.
func (o *Options) fanOut(cmd *cobra.Command, args []string) error {
	line := commandLine(cmd, args)
	results := make([]ClusterResult, len(o.Fleet.contexts))
	for i, c := range o.Fleet.contexts {
		results[i].Context = c
	}
	run := func(i int) {
		results[i] = o.onCluster(cmd.Context(), results[i].Context, line, args)
	}
	rest := results
	if o.Fleet.Canary != "" {
		run(0)
		rest = results[1:]
		if results[0].Err != nil {
			return o.report(results, fmt.Sprintf("canary cluster %s failed: the others were not touched", o.Fleet.Canary))
		}
	}
	offset := len(results) - len(rest)
	if o.Fleet.OneByOne {
		for i := range rest {
			run(offset + i)
			if results[offset+i].Err != nil {
				return o.report(results, fmt.Sprintf("stopped at %s (--one-by-one)", results[offset+i].Context))
			}
		}
		return o.report(results, "")
	}
	var g errgroup.Group
	g.SetLimit(o.Fleet.Parallel)
	for i := range rest {
		g.Go(func() error { run(offset + i); return nil })
	}
	_ = g.Wait()
	return o.report(results, "")
}

// onCluster runs the command line on one context, within the cluster timeout, and reads the
// policy it concerns afterwards.
func (o *Options) onCluster(ctx context.Context, contextName string, line, args []string) ClusterResult {
	ctx, cancel := context.WithTimeout(ctx, o.Fleet.ClusterTimeout)
	defer cancel()
	var out bytes.Buffer
	sub := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out}, o.Clock)
	sub.SetArgs(append([]string{"--context", contextName}, line...))
	start := time.Now()
	err := sub.ExecuteContext(ctx)
	r := ClusterResult{Context: contextName, Output: out.String(), Err: err, Took: time.Since(start), Started: true}
	if len(args) > 0 {
		r.Policy = o.readOn(ctx, contextName, args[0])
	}
	return r
}

// readOn reads a policy on one context (nil when it cannot be read).
func (o *Options) readOn(ctx context.Context, contextName, name string) *v1alpha1.TrafficPolicy {
	cf := genericclioptions.NewConfigFlags(true)
	cf.KubeConfig, cf.Namespace, cf.Context = o.ConfigFlags.KubeConfig, o.ConfigFlags.Namespace, &contextName
	cfg, err := cf.ToRESTConfig()
	if err != nil {
		return nil
	}
	ns, _, err := cf.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil
	}
	cfg.Timeout = 10 * time.Second
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil
	}
	var p v1alpha1.TrafficPolicy
	if c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p) != nil {
		return nil
	}
	return &p
}

// commandLine is the command as given, less the fleet's flags and --context: the subcommand's
// path, its changed flags, and its arguments.
func commandLine(cmd *cobra.Command, args []string) []string {
	path := strings.Fields(cmd.CommandPath())[1:]
	var flags []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name == "context" || slices.Contains(fleetFlags, f.Name) {
			return
		}
		flags = append(flags, "--"+f.Name+"="+f.Value.String())
	})
	return slices.Concat(path, flags, args)
}

// report prints every cluster's output and the table, and fails naming the clusters that did
// not succeed.
func (o *Options) report(results []ClusterResult, stopped string) error {
	for _, r := range results {
		if !r.Started || r.Output == "" && r.Err == nil {
			continue
		}
		fmt.Fprintf(o.Out, "== %s ==\n", r.Context)
		if out := strings.TrimRight(r.Output, "\n"); out != "" {
			fmt.Fprintln(o.Out, out)
		}
		if r.Err != nil {
			fmt.Fprintf(o.Out, "error: %v\n", r.Err)
		}
	}
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLUSTER\tACTION\tPHASE\tARMED\tCONFIRMED\tTOOK\tERROR")
	var failed []string
	for _, r := range results {
		action, phase, armed, confirmed := "-", "-", "-", "-"
		if p := r.Policy; p != nil {
			action, phase = orNone(string(p.Status.ObservedAction)), orNone(string(p.Status.Phase))
			armed, confirmed = conditionStatus(p, v1alpha1.ConditionArmed), conditionStatus(p, v1alpha1.ConditionConfirmed)
		}
		took, errText := r.Took.Round(time.Millisecond).String(), "-"
		switch {
		case !r.Started:
			took, errText = "-", "not started: "+stopped
			failed = append(failed, r.Context)
		case r.Err != nil:
			errText = firstLine(r.Err.Error())
			failed = append(failed, r.Context)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Context, action, phase, armed, confirmed, took, errText)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("not done on %d of %d clusters: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

func conditionStatus(p *v1alpha1.TrafficPolicy, t string) string {
	if c := condition(p, t); c != nil {
		return string(c.Status)
	}
	return "-"
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// fanningOut wraps the verbs of a command tree: on a fleet, each runs as fanOut; watch follows
// one cluster.
func (o *Options) fanningOut(root *cobra.Command) {
	for _, sub := range root.Commands() {
		run := sub.RunE
		if run == nil || sub.Name() == "version" {
			continue
		}
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			switch {
			case o.Fleet.contexts == nil:
				return run(cmd, args)
			case cmd.Name() == "watch":
				return o.watchFleet(cmd, args)
			}
			return o.fanOut(cmd, args)
		}
	}
}

// watchFleet follows the policy on every cluster at once, each cluster's lines as they come,
// prefixed with its name, until every one is at rest again (or Ctrl-C); then one row per cluster.
func (o *Options) watchFleet(cmd *cobra.Command, args []string) error {
	line := commandLine(cmd, args)
	results := make([]ClusterResult, len(o.Fleet.contexts))
	var mu sync.Mutex
	var g errgroup.Group
	for i, name := range o.Fleet.contexts {
		g.Go(func() error {
			out := &prefixWriter{prefix: "[" + name + "] ", w: o.Out, mu: &mu}
			sub := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: out}, o.Clock)
			sub.SetArgs(append([]string{"--context", name}, line...))
			start := time.Now()
			err := sub.ExecuteContext(cmd.Context())
			out.flush()
			results[i] = ClusterResult{Context: name, Err: err, Took: time.Since(start), Started: true, Policy: o.readOn(cmd.Context(), name, args[0])}
			return nil
		})
	}
	_ = g.Wait()
	return o.report(results, "")
}

// prefixWriter writes whole lines to w, each with prefix, one writer at a time.
type prefixWriter struct {
	prefix  string
	w       io.Writer
	mu      *sync.Mutex
	pending []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.pending = append(p.pending, b...)
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.pending[:i])
		p.mu.Unlock()
		p.pending = p.pending[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

// flush writes what is left of a last line without its newline.
func (p *prefixWriter) flush() {
	if len(p.pending) > 0 {
		_, _ = p.Write([]byte("\n"))
	}
}
