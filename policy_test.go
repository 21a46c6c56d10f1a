package fmn

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"fmn/apperr"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, field string }{
		{`{"mode":"immediate"}`, `{"mode":"immediate"}`, ""},
		{`{"mode":"digest","every":"60m"}`, `{"mode":"digest","every":"1h"}`, ""},
		{`{"mode":"digest","daily_at":"8:05","after":10}`, `{"mode":"digest","daily_at":"08:05","after":10}`, ""},
		{`{"mode":"digest","daily_at":"25:00"}`, ``, "delivery.daily_at"},
		{`{"mode":"digest","daily_at":"08:05","after":10}`, `{"mode":"digest","daily_at":"08:05","after":10}`, ""},
		{`{"mode":"digest"}`, ``, "delivery"},
		{`{"mode":"digest","every":"90m"}`, `{"mode":"digest","every":"1h30m"}`, ""},
		{`{"mode":"digest","every":"1s"}`, ``, "delivery.every"},
		{`{"mode":"digest","after":-1}`, ``, "delivery.after"},
		{`{"mode":"digest","after":100000}`, ``, "delivery.after"},
		{`{"mode":"immediate","after":3}`, ``, "delivery"},
		{`{"mode":"hourly"}`, ``, "delivery.mode"},
		{`{"mode":"digest","every":"1h","extra":1}`, ``, "delivery"},
		{`[]`, ``, "delivery"},
	} {
		got, err := ParsePolicy(json.RawMessage(tc.in))
		if tc.field != "" {
			if f := fieldOf(err); f != tc.field {
				t.Errorf("%s: error %v, want one on field %s", tc.in, err, tc.field)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestQuietActive(t *testing.T) {
	t.Parallel()
	s, e := "22:00", "07:00"
	overnight := QuietOf("Europe/Paris", &s, &e)
	day1, day2 := "09:00", "17:00"
	daytime := QuietOf("UTC", &day1, &day2)
	for _, tc := range []struct {
		q    Quiet
		at   string
		want bool
	}{
		{overnight, "2026-01-10T20:59:00Z", false}, // 21:59 Paris
		{overnight, "2026-01-10T21:00:00Z", true},  // 22:00 Paris
		{overnight, "2026-01-11T05:59:00Z", true},  // 06:59 Paris
		{overnight, "2026-01-11T06:00:00Z", false}, // 07:00 Paris
		{daytime, "2026-01-10T08:59:00Z", false},
		{daytime, "2026-01-10T09:00:00Z", true},
		{daytime, "2026-01-10T17:00:00Z", false},
		{QuietOf("UTC", nil, nil), "2026-01-10T23:00:00Z", false},
	} {
		at, _ := time.Parse(time.RFC3339, tc.at)
		if got := tc.q.Active(at); got != tc.want {
			t.Errorf("%+v at %s: %v, want %v", tc.q, tc.at, got, tc.want)
		}
	}
}

func fieldOf(err error) string {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		return inv.Field
	}
	return ""
}
