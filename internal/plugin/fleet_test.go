package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// TestWhichClustersACommandRunsOn: --context a,b,c, --all-contexts (sorted), --clusters-file with
// --cluster-selector, the canary first; one context is not a fleet; what cannot be run is said.
func TestWhichClustersACommandRunsOn(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	for _, name := range []string{"syd", "sin", "fra"} {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: "https://" + name + ".example.com"}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name}
	}
	cfg.CurrentContext = "syd"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	clusters := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(clusters, []byte(`clusters:
- {context: syd, labels: {region: apac, tier: canary}}
- {context: sin, labels: {region: apac}}
- {context: fra, labels: {region: emea}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		context string
		fleet   Fleet
		want    string // the contexts, comma-separated ("" one cluster), or the error's text
	}{
		{"one context is one cluster", "sin", Fleet{}, ""},
		{"a list", "sin, fra,sin", Fleet{}, "sin,fra"},
		{"every context, sorted", "", Fleet{AllContexts: true}, "fra,sin,syd"},
		{"a file's clusters by label", "", Fleet{ClustersFile: clusters, Selector: "region=apac"}, "syd,sin"},
		{"a file's clusters, every one", "", Fleet{ClustersFile: clusters}, "syd,sin,fra"},
		{"the canary first", "syd,sin,fra", Fleet{Canary: "fra"}, "fra,syd,sin"},
		{"a canary not among them", "syd,sin", Fleet{Canary: "fra"}, "error: --canary-cluster fra is not among the clusters (syd, sin)"},
		{"a selector that selects none", "", Fleet{ClustersFile: clusters, Selector: "region=us"}, `error: no cluster to run on`},
		{"an order without clusters", "syd", Fleet{OneByOne: true}, "error: --canary-cluster and --one-by-one order several clusters"},
		{"a bad selector", "", Fleet{ClustersFile: clusters, Selector: "region in"}, `error: --cluster-selector "region in"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := genericclioptions.NewConfigFlags(true)
			cf.KubeConfig = &kubeconfig
			if tc.context != "" {
				cf.Context = &tc.context
			}
			f := tc.fleet
			got := ""
			if err := f.resolve(cf); err != nil {
				got = "error: " + err.Error()
			} else {
				got = strings.Join(f.contexts, ",")
			}
			if got != tc.want && !(strings.HasPrefix(tc.want, "error: ") && strings.HasPrefix(got, tc.want)) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
