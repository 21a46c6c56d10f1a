package rules

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"fmn/apperr"
)

func TestCheckPatterns(t *testing.T) {
	t.Parallel()
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("p%d", i)
		}
		return out
	}
	r := Rule{Name: "x", Track: Track{Users: many(3), Packages: many(4)}, Filters: Filters{TopicsExclude: many(5)}}
	if n := r.PatternCount(); n != 12 {
		t.Fatalf("PatternCount = %d, want 12", n)
	}
	if err := r.CheckPatterns(12); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	var inv *apperr.InvalidError
	if err := r.CheckPatterns(8); !errors.As(err, &inv) || inv.Field != "filters.topics_exclude" {
		t.Fatalf("over the limit: %v", err)
	}
	if err := r.CheckPatterns(0); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	// Every list of Track and Filters is counted, whatever it is called:
	// fill each []string field with one entry by reflection and expect
	// that many.
	var full Rule
	want := 0
	for _, v := range []reflect.Value{reflect.ValueOf(&full.Track).Elem(), reflect.ValueOf(&full.Filters).Elem()} {
		for i := range v.NumField() {
			if v.Field(i).Type() == reflect.TypeOf([]string(nil)) {
				v.Field(i).Set(reflect.ValueOf([]string{"x"}))
				want++
			}
		}
	}
	if got := full.PatternCount(); got != want || want < 7 {
		t.Fatalf("PatternCount of a rule with one entry per list = %d, want %d", got, want)
	}
}
