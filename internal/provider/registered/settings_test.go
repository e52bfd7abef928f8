package registered

import (
	"reflect"
	"testing"

	"floodgate.dev/floodgate/internal/shed"
)

func TestTheSettingsAConfigMapHoldsAreTheSettingsItWasWrittenFrom(t *testing.T) {
	for _, s := range []Settings{
		{},
		{RedirectHosts: shed.RedirectHosts{"status.example.com", "*.example.org"}},
		{RegexHeaderControllers: []string{}},
		{RegexHeaderControllers: []string{"gateway.envoyproxy.io/gatewayclass-controller", "example.com/other"}},
	} {
		if got := SettingsOf(ConfigMap("floodgate-system", s)); !reflect.DeepEqual(got, s) {
			t.Errorf("%+v read back as %+v", s, got)
		}
	}
}
