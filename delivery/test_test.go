package delivery_test

import (
	"testing"
	"time"

	"fmn"
	"fmn/delivery"
)

// TestTestable: a test goes where any send may go (confirmed, on, not
// failing), muted or not, in quiet hours or not.
func TestTestable(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(time.Hour)
	ok := fmn.Destination{Confirmed: true, Enabled: true, MutedUntil: &later}
	for _, c := range []struct {
		d    fmn.Destination
		want bool
	}{
		{ok, true},
		{fmn.Destination{Confirmed: false, Enabled: true}, false},
		{fmn.Destination{Confirmed: true, Enabled: false}, false},
		{fmn.Destination{Confirmed: true, Enabled: true, FailingReason: "550 no such user"}, false},
	} {
		if got, why := delivery.Testable(c.d); got != c.want {
			t.Errorf("Testable(%+v) = %v (%s), want %v", c.d, got, why, c.want)
		}
	}
	// Notifications to the muted one are skipped, all the same.
	if dec, _ := delivery.Decide(ok, fmn.Quiet{}, time.Now()); dec != delivery.Skip {
		t.Errorf("Decide(muted) = %v, want Skip", dec)
	}
}
