package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/internal/drill"
)

func drillCmd() *cobra.Command {
	var report, junit string
	var verbose, fromCluster, strip bool
	live := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "drill FILE... | drill --from-cluster [--context C] -n NS POLICY [RUNBOOK]",
		Short: "Rehearse runbooks on an embedded control plane with a time-warped clock",
		Long: "drill starts an embedded control plane (a real kube-apiserver and etcd), installs the CRDs, runs\n" +
			"the manager in-process on a warped clock, creates the drill's setup objects and runs its steps:\n" +
			"kubectl floodgate commands, raw patches, clock advances and expectations. It prints a timeline\n" +
			"and exits non-zero when an expectation fails.\n\n" +
			"--from-cluster rehearses a live cluster's real policy: it copies, read-only (get and list only),\n" +
			"the TrafficPolicy POLICY of namespace NS with its targets, autoscalers, their scale targets, the\n" +
			"Services they route to and any Gateway API parents into the embedded control plane, then runs\n" +
			"RUNBOOK's steps there (default: shed, ramp through every step with holds warped, Completed,\n" +
			"exact-restore check). A policy that is not at rest is refused unless --strip-floodgate-state.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if verbose {
				ctrl.SetLogger(zap.New(zap.WriteTo(cmd.ErrOrStderr())))
			} else {
				ctrl.SetLogger(logr.Discard())
			}
			load := drill.Load
			if fromCluster {
				if len(files) > 2 {
					return fmt.Errorf("--from-cluster takes POLICY and at most one RUNBOOK")
				}
				var err error
				if load, err = liveLoader(cmd, live, files, strip); err != nil {
					return err
				}
				files = files[:1]
			}
			var results []*drill.Result
			failed := 0
			for _, path := range files {
				f, err := load(path)
				if err != nil {
					return err
				}
				res, err := drill.Run(cmd.Context(), f, cmd.OutOrStdout())
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				results = append(results, res)
				if res.Failed {
					failed++
				}
			}
			write := drill.WriteMarkdown
			if strings.HasSuffix(strings.ToLower(report), ".html") {
				write = drill.WriteHTML
			}
			if err := writeReport(report, results, write); err != nil {
				return err
			}
			if err := writeReport(junit, results, drill.WriteJUnit); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d drills failed", failed, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&report, "report", "", "write the timelines to this file: a self-contained HTML page with an SVG timeline when it ends in .html, else Markdown")
	cmd.Flags().StringVar(&junit, "junit", "", "write JUnit XML (a test case per step) to this file")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the manager's logs")
	cmd.Flags().BoolVar(&fromCluster, "from-cluster", false, "rehearse the live cluster's policy POLICY (in -n NS, of --context) on read-only copies")
	cmd.Flags().BoolVar(&strip, "strip-floodgate-state", false, "with --from-cluster: copy a policy that is not at rest without Floodgate's state (restore records, its lever)")
	live.AddFlags(cmd.Flags())
	return cmd
}

// liveLoader loads the rehearsal of the live cluster's policy args[0], with the runbook args[1].
func liveLoader(cmd *cobra.Command, live *genericclioptions.ConfigFlags, args []string, strip bool) (func(string) (*drill.File, error), error) {
	cfg, err := live.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	ns, _, err := live.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	raw, _ := live.ToRawKubeConfigLoader().RawConfig()
	context := raw.CurrentContext
	if live.Context != nil && *live.Context != "" {
		context = *live.Context
	}
	dir, err := os.MkdirTemp("", "floodgate-rehearsal-")
	if err != nil {
		return nil, err
	}
	cobra.OnFinalize(func() { _ = os.RemoveAll(dir) })
	src := drill.Source{Config: cfg, Context: context, Namespace: ns, Policy: args[0], StripFloodgateState: strip, CRDDir: dir}
	if len(args) == 2 {
		src.Runbook = args[1]
	}
	return func(string) (*drill.File, error) { return drill.FromCluster(cmd.Context(), src) }, nil
}

func writeReport(path string, results []*drill.Result, write func(io.Writer, []*drill.Result) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(write(f, results), f.Close())
}
