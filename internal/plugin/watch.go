package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"floodgate.dev/floodgate/api/v1alpha1"
)

func (o *Options) watchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch POLICY",
		Short: "Show the status live (phase, step, hold left, gates, targets) until the policy comes to rest, or Ctrl-C",
		Long: "watch shows what `status` shows and redraws it on every change the API server sends (and every\n" +
			"second on a terminal, for the hold left). It returns when the policy comes to rest (Normal or\n" +
			"Completed) after it was away from it, or when interrupted. When stdout is not a terminal it prints\n" +
			"each new status below the last, with no terminal control codes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.watch(cmd.Context(), args[0]) },
	}
}

// atRest reports whether a policy's lever is at rest and the controller has seen its spec.
func atRest(p *v1alpha1.TrafficPolicy) bool {
	return (p.Status.Phase == v1alpha1.PhaseNormal || p.Status.Phase == v1alpha1.PhaseCompleted) && p.Status.ObservedGeneration >= p.Generation
}

// isTerminal reports whether w is a terminal (the status is then redrawn in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (o *Options) watch(ctx context.Context, name string) error {
	p, err := o.get(ctx, name)
	if err != nil {
		return err
	}
	live := isTerminal(o.Out)
	draw := func() {
		if live {
			fmt.Fprint(o.Out, "\033[H\033[2J") // home, clear: the view is redrawn in place
			fmt.Fprintf(o.Out, "Every change of trafficpolicy/%s, live (Ctrl-C to stop)\n\n", name)
		} else {
			fmt.Fprintf(o.Out, "--- %s\n", o.Clock.Now().UTC().Format(time.RFC3339))
		}
		printStatus(o.Out, p, o.Clock.Now())
	}
	draw()
	away := !atRest(p)
	var redraw <-chan time.Time
	if live {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		redraw = t.C
	}
	for {
		w, err := o.client.Watch(ctx, &v1alpha1.TrafficPolicyList{}, client.InNamespace(o.namespace),
			client.MatchingFields{"metadata.name": name}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: p.ResourceVersion}})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return o.explain(err, "watch", name)
		}
		done, err := o.follow(ctx, w, &p, &away, draw, redraw)
		w.Stop()
		if done || err != nil {
			return err
		}
		// The server closed the watch (it does after a while): read the policy again and resume.
		if p, err = o.get(ctx, name); err != nil {
			return err
		}
		draw()
	}
}

// follow draws each change from one watch; done is true when watching should end.
func (o *Options) follow(ctx context.Context, w watch.Interface, p **v1alpha1.TrafficPolicy, away *bool, draw func(), redraw <-chan time.Time) (done bool, _ error) {
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.Out, "\nstopped watching")
			return true, nil
		case <-redraw:
			draw()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				fmt.Fprintf(o.Out, "\ntrafficpolicy/%s was deleted\n", (*p).Name)
				return true, nil
			case watch.Error:
				return false, nil
			}
			next, ok := ev.Object.(*v1alpha1.TrafficPolicy)
			if !ok {
				continue
			}
			*p = next
			draw()
			if !atRest(next) {
				*away = true
			} else if *away {
				fmt.Fprintf(o.Out, "\ntrafficpolicy/%s is at rest (%s)\n", next.Name, next.Status.Phase)
				return true, nil
			}
		}
	}
}
