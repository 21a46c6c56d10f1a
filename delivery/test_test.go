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
		d       fmn.Destination
		want    bool
		refusal delivery.Refusal
	}{
		{ok, true, delivery.NotRefused},
		{fmn.Destination{Confirmed: false, Enabled: true}, false, delivery.NotConfirmed},
		{fmn.Destination{Confirmed: false, Enabled: false, FailingReason: "x"}, false, delivery.NotConfirmed},
		{fmn.Destination{Confirmed: true, Enabled: false}, false, delivery.Disabled},
		{fmn.Destination{Confirmed: true, Enabled: false, FailingReason: "x"}, false, delivery.Disabled},
		{fmn.Destination{Confirmed: true, Enabled: true, FailingReason: "550 no such user"}, false, delivery.Failing},
	} {
		if got, why := delivery.Testable(c.d); got != c.want {
			t.Errorf("Testable(%+v) = %v (%s), want %v", c.d, got, why, c.want)
		}
		if got := delivery.Refused(c.d); got != c.refusal {
			t.Errorf("Refused(%+v) = %v, want %v", c.d, got, c.refusal)
		}
	}
	// Notifications to the muted one are skipped, all the same.
	if dec, _ := delivery.Decide(ok, fmn.Quiet{}, time.Now()); dec != delivery.Skip {
		t.Errorf("Decide(muted) = %v, want Skip", dec)
	}
}
