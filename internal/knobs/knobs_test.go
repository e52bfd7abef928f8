package knobs

import (
	"reflect"
	"testing"
)

func TestIntersectTreatsEmptyAsUnrestricted(t *testing.T) {
	cases := []struct {
		name           string
		standing, step []string
		restrict       bool
		want           []string
	}{
		{"neither restricts", nil, nil, false, nil},
		{"standing only", []string{"NZ", "AU"}, nil, true, []string{"AU", "NZ"}},
		{"step only", nil, []string{"AU"}, true, []string{"AU"}},
		{"both", []string{"AU", "US"}, []string{"AU", "NZ", "SG"}, true, []string{"AU"}},
		{"disjoint admits nobody", []string{"US"}, []string{"AU"}, true, nil},
	}
	for _, c := range cases {
		restrict, got := Intersect(c.standing, c.step)
		if restrict != c.restrict || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got (%v, %v), want (%v, %v)", c.name, restrict, got, c.restrict, c.want)
		}
	}
}

func TestAnAllowlistThatAdmitsNobodyShedsEverything(t *testing.T) {
	if got := New(true, nil, 50, 20); !got.Equal(ShedAll()) {
		t.Fatalf("got %+v, want ShedAll", got)
	}
}

func TestFullShareIsNoShare(t *testing.T) {
	if got := New(false, nil, 0, 100); !got.IsFullTraffic() {
		t.Fatalf("admitPercent 100 must be full traffic, got %+v", got)
	}
	if got := New(false, nil, 0, 50); got.IsFullTraffic() {
		t.Fatal("admitPercent 50 is not full traffic")
	}
	if got := New(false, nil, 5, 0); got.IsFullTraffic() {
		t.Fatal("a rate limit is not full traffic")
	}
}
