package drill

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-shellwords"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"floodgate.dev/floodgate/internal/provider/registered"
)

// A drill across clusters (File.Clusters): one embedded control plane and manager per cluster,
// each with the drill's CRDs and setup, on clocks that move together; a runner per cluster does
// each step's part there, and one timeline row says what every cluster did.

// member is one cluster of a drill across clusters.
type member struct {
	name string
	*runner
}

// fleetRunner runs a drill across clusters.
type fleetRunner struct {
	f          *File
	out        io.Writer
	began      time.Time
	start      time.Time
	res        *Result
	members    []member
	kubeconfig string // one context per cluster, named as the cluster
}

// runFleet runs a drill across its clusters, each in its own environment.
func runFleet(ctx context.Context, f *File, out io.Writer, start time.Time) (*Result, error) {
	fr := &fleetRunner{f: f, out: out, start: start, res: &Result{Name: f.Name, Clusters: f.Clusters}}
	defer fr.close()
	for _, name := range f.Clusters {
		env, err := StartEnvWith(start, EnvOptions{}, f.CRDs...)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		dc, err := discovery.NewDiscoveryClientForConfig(env.ControlPlane.Config)
		if err != nil {
			env.Close()
			return nil, err
		}
		r := &runner{env: env, f: f, out: io.Discard, start: start, res: &Result{},
			kinds: providerKinds(env.Client), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
		fr.members = append(fr.members, member{name: name, runner: r})
		if f.Gateway != nil {
			gwCtx, stop := context.WithCancel(ctx)
			defer stop()
			go registered.PlayGateways(gwCtx, env.Client, f.Gateway.ControllerName, 20*time.Millisecond)
		}
	}
	var err error
	if fr.kubeconfig, err = fr.writeKubeconfig(); err != nil {
		return nil, err
	}
	return fr.run(ctx)
}

func (fr *fleetRunner) close() {
	for _, m := range fr.members {
		m.env.Close()
	}
	if fr.kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(fr.kubeconfig))
	}
}

// writeKubeconfig writes one kubeconfig with a context per cluster, as a responder's has.
func (fr *fleetRunner) writeKubeconfig() (string, error) {
	merged := clientcmdapi.NewConfig()
	for _, m := range fr.members {
		cfg, err := clientcmd.LoadFromFile(m.env.Kubeconfig)
		if err != nil {
			return "", err
		}
		cur := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[m.name], merged.AuthInfos[m.name] = cfg.Clusters[cur.Cluster], cfg.AuthInfos[cur.AuthInfo]
		merged.Contexts[m.name] = &clientcmdapi.Context{Cluster: m.name, AuthInfo: m.name}
	}
	merged.CurrentContext = fr.members[0].name
	dir, err := os.MkdirTemp("", "floodgate-drill-fleet-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*merged, path)
}

func (fr *fleetRunner) run(ctx context.Context) (*Result, error) {
	fr.began = time.Now()
	fmt.Fprintf(fr.out, "Drill: %s\n", fr.f.Name)
	if fr.f.Description != "" {
		fmt.Fprintf(fr.out, "  %s\n", strings.TrimSpace(fr.f.Description))
	}
	fmt.Fprintf(fr.out, "  clusters: %s\n", strings.Join(fr.f.Clusters, ", "))
	fmt.Fprintf(fr.out, "  %-8s  %-8s  %s\n", "WALL", "DRILL", "STEP")
	setup := Row{Kind: "setup"}
	for _, m := range fr.members {
		m.began = fr.began
		if err := m.doSetup(ctx); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", m.name, err)
		}
		first := m.res.Rows[0]
		setup.Title = first.Title + " on each cluster"
		setup.Output = first.Output
		setup.Changes = append(setup.Changes, prefixed(m.name, first.Changes)...)
	}
	fr.emit(ctx, setup, nil)
	fr.res.Description, fr.res.Start = strings.TrimSpace(fr.f.Description), fr.start
	for i, s := range fr.f.Steps {
		row := fr.step(ctx, s)
		fr.emit(ctx, row, s.Clusters)
		if row.Failure != "" {
			fr.res.Failed = true
			for _, skipped := range fr.f.Steps[i+1:] {
				fr.emit(ctx, Row{Kind: "skip", Title: describeOn(skipped)}, skipped.Clusters)
			}
			break
		}
	}
	fr.res.Wall = time.Since(fr.began)
	fr.res.DrillTime = fr.clock().Sub(fr.start)
	verdict := "PASS"
	if fr.res.Failed {
		verdict = "FAIL"
	}
	fmt.Fprintf(fr.out, "%s  %s: %d steps on %d clusters, %s wall, %s drill time\n\n", verdict, fr.f.Name, len(fr.f.Steps), len(fr.members),
		fr.res.Wall.Round(10*time.Millisecond), fr.res.DrillTime)
	return fr.res, nil
}

func (fr *fleetRunner) clock() time.Time { return fr.members[0].env.Clock.Now() }

// on are the members a step concerns: those it names, else every one.
func (fr *fleetRunner) on(s Step) []member {
	if len(s.Clusters) == 0 {
		return fr.members
	}
	var out []member
	for _, m := range fr.members {
		if slices.Contains(s.Clusters, m.name) {
			out = append(out, m)
		}
	}
	return out
}

// step does one step: a run once, as the plugin reaches several clusters (--context naming
// them); an advance on every cluster's clock; anything else on each cluster it concerns. Every
// cluster then settles, and the row says what changed where.
func (fr *fleetRunner) step(ctx context.Context, s Step) Row {
	row := Row{At: fr.clock(), Title: describeOn(s)}
	targets := fr.on(s)
	switch {
	case s.Run != "":
		row.Kind = "run"
		out, err := fr.runCommand(ctx, s.Run, targets)
		row.Output = out
		switch {
		case s.ExpectError != "" && err == nil:
			row.Failure = fmt.Sprintf("the command succeeded; expected it to fail with %q", s.ExpectError)
		case s.ExpectError != "" && !strings.Contains(err.Error()+strings.Join(out, "\n"), s.ExpectError):
			row.Failure = fmt.Sprintf("the command failed with %q; expected %q", err, s.ExpectError)
		case s.ExpectError != "":
			row.Output = append(row.Output, "error (expected): "+err.Error())
		case err != nil:
			row.Failure = err.Error()
		}
	case s.Advance != nil:
		row.Kind = "advance"
		for _, m := range fr.members {
			m.env.Clock.Advance(s.Advance.Duration)
		}
	default:
		for _, m := range targets {
			r := m.step(ctx, s)
			row.Kind, row.Title = r.Kind, describeOn(s)+r.Title[len(describe(s)):]
			row.Output = append(row.Output, prefixed(m.name, r.Output)...)
			if r.Failure != "" {
				row.Failure = m.name + ": " + r.Failure
				return row
			}
			row.Changes = append(row.Changes, prefixed(m.name, r.Changes)...)
		}
		if s.Expect != nil {
			return row
		}
	}
	for _, m := range fr.members {
		if s.Run != "" || s.Advance != nil || !slices.ContainsFunc(targets, func(t member) bool { return t.name == m.name }) {
			row.Changes = append(row.Changes, prefixed(m.name, m.settle(ctx))...)
		}
	}
	return row
}

// runCommand runs a plugin command once, on the merged kubeconfig, with --context naming the
// clusters (unless the command names its own).
func (fr *fleetRunner) runCommand(ctx context.Context, line string, targets []member) ([]string, error) {
	args, err := shellwords.Parse(line)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--context" || strings.HasPrefix(a, "--context=") }) {
		var names []string
		for _, m := range targets {
			names = append(names, m.name)
		}
		line += " --context " + strings.Join(names, ",")
	}
	r := fr.members[0].runner
	kubeconfig := r.env.Kubeconfig
	r.env.Kubeconfig = fr.kubeconfig
	defer func() { r.env.Kubeconfig = kubeconfig }()
	return r.runCommand(ctx, line)
}

// emit prints a row and keeps it, with every cluster's state after it.
func (fr *fleetRunner) emit(ctx context.Context, row Row, clusters []string) {
	row.Wall, row.StateAt = time.Since(fr.began), fr.clock()
	if row.At.IsZero() {
		row.At = fr.clock()
	}
	if row.Kind != "skip" {
		row.Clusters = map[string]*State{}
		for _, m := range fr.members {
			row.Clusters[m.name] = m.state(ctx)
		}
		row.State = row.Clusters[fr.members[0].name]
	}
	fr.res.Rows = append(fr.res.Rows, row)
	printRow(fr.out, row)
}

// describeOn describes a step with the clusters it names.
func describeOn(s Step) string {
	if len(s.Clusters) == 0 {
		return describe(s)
	}
	return describe(s) + " [" + strings.Join(s.Clusters, ", ") + "]"
}

func prefixed(cluster string, lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, cluster+": "+l)
	}
	return out
}
