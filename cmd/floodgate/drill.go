package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"floodgate.dev/floodgate/internal/drill"
)

func drillCmd() *cobra.Command {
	var report, junit string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "drill FILE...",
		Short: "Rehearse runbooks on an embedded control plane with a time-warped clock",
		Long: "drill starts an embedded control plane (a real kube-apiserver and etcd), installs the CRDs, runs\n" +
			"the manager in-process on a warped clock, creates the drill's setup objects and runs its steps:\n" +
			"kubectl floodgate commands, raw patches, clock advances and expectations. It prints a timeline\n" +
			"and exits non-zero when an expectation fails.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if verbose {
				ctrl.SetLogger(zap.New(zap.WriteTo(cmd.ErrOrStderr())))
			} else {
				ctrl.SetLogger(logr.Discard())
			}
			var results []*drill.Result
			failed := 0
			for _, path := range files {
				f, err := drill.Load(path)
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
	return cmd
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
