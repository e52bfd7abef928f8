package registered

import (
	"reflect"
	"strings"
	"testing"

	"floodgate.dev/floodgate/internal/provider"
	"floodgate.dev/floodgate/internal/shed"
)

func TestTheSettingsAConfigMapHoldsAreTheSettingsItWasWrittenFrom(t *testing.T) {
	for _, s := range []Settings{
		{},
		{RedirectHosts: shed.RedirectHosts{"status.example.com", "*.example.org"}},
		{RegexHeaderControllers: []string{}},
		{RegexHeaderControllers: []string{"gateway.envoyproxy.io/gatewayclass-controller", "example.com/other"}},
		{DataPlaneControllers: map[string]provider.DataPlane{"k8s.io/ingress-nginx": "traefik", "example.com/gw": "envoy-gateway"}},
	} {
		if got := SettingsOf(ConfigMap("floodgate-system", s)); !reflect.DeepEqual(got, s) {
			t.Errorf("%+v read back as %+v", s, got)
		}
	}
}

func TestADataPlaneMappingThatIsNotControllerEqualsDataPlaneIsRefusedWithAnExample(t *testing.T) {
	for _, bad := range []string{"k8s.io/ingress-nginx", "=traefik", "k8s.io/ingress-nginx=", "a=b,c"} {
		_, err := ParseDataPlaneControllers(bad)
		if err == nil || !strings.Contains(err.Error(), "for example k8s.io/ingress-nginx=traefik") {
			t.Errorf("%q: %v, want a refusal with an example", bad, err)
		}
	}
	got, err := ParseDataPlaneControllers(" k8s.io/ingress-nginx = traefik ,example.com/gw=envoy-gateway")
	want := map[string]provider.DataPlane{"k8s.io/ingress-nginx": "traefik", "example.com/gw": "envoy-gateway"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
}
