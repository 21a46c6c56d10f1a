package email

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fmn/apperr"
	"fmn/store"
)

// TestDigestAfter: with after 10, thirty matches make exactly three
// digests of ten, through River's workers running concurrently.
func TestDigestAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","after":10}`)
	q := f.startRiver(f.worker())
	var ids []int64
	for i := range 30 {
		ids = append(ids, f.notify(q, bodhiMeta(i)))
	}
	for _, id := range ids {
		f.waitStatus(id, "sent")
	}
	msgs := f.smtp.WaitFor(t, 3, 20*time.Second)
	// Nothing is left that a later tick could send.
	if due, err := f.sender.Due(f.ctx); err != nil || len(due) != 0 {
		t.Errorf("due after the digests: %v (%v)", due, err)
	}
	if len(f.smtp.Messages()) != 3 {
		t.Fatalf("%d mails, want 3", len(f.smtp.Messages()))
	}
	ds, err := f.st.ListDigests(f.ctx, f.destID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("%d digests, want 3: %+v", len(ds), ds)
	}
	for _, d := range ds {
		if d.Items != 10 || d.Status != "sent" {
			t.Errorf("digest %+v, want 10 items sent", d)
		}
	}
	for _, m := range msgs {
		if s := parseMail(t, m).Header.Get("Subject"); s != "[fmn] 10 notifications: bodhi" {
			t.Errorf("Subject %q", s)
		}
	}
}

// TestDigestEvery: every 1h sends one digest an hour after the first item
// waited, not before.
func TestDigestEvery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.clock.Set(t0)
	w := f.worker()
	for i := range 3 {
		if err := f.work(w, f.notify(nil, bodhiMeta(i)), 1); err != nil {
			t.Fatal(err)
		}
		f.clock.Set(f.clock.Now().Add(10 * time.Minute))
	}
	f.clock.Set(t0.Add(59 * time.Minute))
	f.expectDigests(0)
	f.clock.Set(t0.Add(60 * time.Minute))
	f.expectDigests(1)
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	m := parseMail(t, f.smtp.Messages()[0])
	if s := m.Header.Get("Subject"); s != "[fmn] 3 notifications: bodhi" {
		t.Errorf("Subject %q", s)
	}
	// The next item starts a new hour.
	if err := f.work(w, f.notify(nil, bodhiMeta(9)), 1); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(100 * time.Minute))
	f.expectDigests(0)
	f.clock.Set(t0.Add(121 * time.Minute))
	f.expectDigests(1)
}

// TestDigestDailyAt: daily_at is the owner's local time.
func TestDigestDailyAt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","daily_at":"08:00"}`)
	if err := f.st.UpdateUserSettings(f.ctx, f.userID, store.UserSettings{Timezone: "Europe/Paris"}); err != nil {
		t.Fatal(err)
	}
	// 05:00 UTC is 06:00 in Paris (CET, UTC+1, in March before DST).
	f.clock.Set(time.Date(2026, 3, 10, 5, 0, 0, 0, time.UTC))
	w := f.worker()
	for i := range 2 {
		if err := f.work(w, f.notify(nil, bodhiMeta(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(time.Date(2026, 3, 10, 6, 59, 0, 0, time.UTC)) // 07:59 Paris
	f.expectDigests(0)
	f.clock.Set(time.Date(2026, 3, 10, 7, 0, 0, 0, time.UTC)) // 08:00 Paris
	f.expectDigests(1)
	f.clock.Set(time.Date(2026, 3, 10, 7, 1, 0, 0, time.UTC))
	f.expectDigests(0)
}

// TestDigestEveryOrAfter: whichever comes first.
func TestDigestEveryOrAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h","after":3}`)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.clock.Set(t0)
	w := f.worker()
	for i := range 4 {
		if err := f.work(w, f.notify(nil, bodhiMeta(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("after 3: %d mails, want 1", n)
	}
	f.clock.Set(t0.Add(61 * time.Minute))
	f.expectDigests(1) // the fourth, by time
}

// TestQuietHours: mail matched during quiet hours waits and goes out as
// one digest when they end.
func TestQuietHours(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start, end := "22:00", "07:00"
	if err := f.st.UpdateUserSettings(f.ctx, f.userID, store.UserSettings{Timezone: "UTC", QuietStart: &start, QuietEnd: &end}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC))
	w := f.worker()
	var ids []int64
	for i := range 3 {
		id := f.notify(nil, bodhiMeta(i))
		ids = append(ids, id)
		if err := f.work(w, id, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.smtp.Messages()); n != 0 {
		t.Fatalf("%d mails during quiet hours", n)
	}
	f.clock.Set(time.Date(2026, 3, 11, 6, 59, 0, 0, time.UTC))
	f.expectDigests(0)
	f.clock.Set(time.Date(2026, 3, 11, 7, 0, 0, 0, time.UTC))
	f.expectDigests(1)
	for _, id := range ids {
		if s, _, _ := f.status(id); s != "sent" {
			t.Errorf("notification %d: %s", id, s)
		}
	}
	// Out of quiet hours, mail is immediate again.
	id := f.notify(nil, bodhiMeta(7))
	if err := f.work(w, id, 1); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := f.status(id); s != "sent" || len(f.smtp.Messages()) != 2 {
		t.Errorf("after quiet hours: %s, %d mails", s, len(f.smtp.Messages()))
	}
}

// TestDigestSurvivesRestart: waiting items live in the database; a new
// Sender (another process) sends them.
func TestDigestSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.clock.Set(t0)
	if err := f.work(f.worker(), f.notify(nil, bodhiMeta(1)), 1); err != nil {
		t.Fatal(err)
	}
	again := *f.sender
	again.Unsubscribe = &Unsubscriber{Store: f.st}
	f.sender = &again
	f.clock.Set(t0.Add(2 * time.Hour))
	f.expectDigests(1)
}

// expectDigests runs what the periodic tick and the digest jobs do, at the
// fake clock's time, and checks how many digests went out.
func (f *fixture) expectDigests(want int) {
	f.t.Helper()
	due, err := f.sender.Due(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if want > 0 && !slices.Contains(due, f.destID) || want == 0 && len(due) != 0 {
		f.t.Fatalf("at %s: due %v, want %d digests", f.clock.Now(), due, want)
	}
	before := len(f.smtp.Messages())
	sent, err := f.sender.Flush(f.ctx, f.destID)
	if err != nil {
		f.t.Fatal(err)
	}
	if sent != want {
		f.t.Fatalf("at %s: %d digests sent, want %d", f.clock.Now(), sent, want)
	}
	if got := len(f.smtp.Messages()) - before; got != want {
		f.t.Fatalf("server got %d digests, want %d", got, want)
	}
	for _, m := range f.smtp.Messages()[before:] {
		if !strings.HasPrefix(parseMail(f.t.(*testing.T), m).Header.Get("Message-Id"), "<fmn.digest.") {
			f.t.Errorf("digest Message-ID %q", parseMail(f.t.(*testing.T), m).Header.Get("Message-Id"))
		}
	}
}

// TestDigestAbandonedNotResent: a digest formed by a worker that died
// before recording the send is given up as 'unknown', never resent.
func TestDigestAbandonedNotResent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	now := time.Now()
	f.clock.Set(now)
	id := f.notify(nil, bodhiMeta(1))
	if err := f.work(f.worker(), id, 1); err != nil {
		t.Fatal(err)
	}
	// The dying worker claimed the digest (and perhaps sent it).
	dg, err := f.st.NextDigest(f.ctx, f.destID, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.ClaimDigest(f.ctx, dg); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	f.clock.Set(now.Add(2 * time.Hour))
	if due, err := f.sender.Due(f.ctx); err != nil || len(due) != 0 {
		t.Fatalf("due %v (%v): the item is in a digest already", due, err)
	}
	if s, _, _ := f.status(id); s != "unknown" {
		t.Errorf("item status %q, want unknown", s)
	}
	ds, _ := f.st.ListDigests(f.ctx, f.destID)
	if len(ds) != 1 || ds[0].Status != "unknown" {
		t.Errorf("digests %+v", ds)
	}
	if n := len(f.smtp.Messages()); n != 0 {
		t.Errorf("%d mails", n)
	}
}

// TestDigestTickThroughRiver: the periodic tick, run by River's leader,
// queues the digest job that sends what is due.
func TestDigestTickThroughRiver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.clock.Set(t0)
	w := f.worker()
	for i := range 2 {
		if err := f.work(w, f.notify(nil, bodhiMeta(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(t0.Add(90 * time.Minute))
	f.startRiver(w) // the tick runs on start
	msgs := f.smtp.WaitFor(t, 1, 30*time.Second)
	if s := parseMail(t, msgs[0]).Header.Get("Subject"); s != "[fmn] 2 notifications: bodhi" {
		t.Errorf("Subject %q", s)
	}
}

// TestDigestDroppedWhenDisabled: items waiting for a destination that was
// turned off are given up with the reason, not mailed when it returns.
func TestDigestDroppedWhenDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.clock.Set(t0)
	id := f.notify(nil, bodhiMeta(1))
	if err := f.work(f.worker(), id, 1); err != nil {
		t.Fatal(err)
	}
	off, on := false, true
	if _, err := f.st.UpdateDestination(f.ctx, f.userID, f.destID, store.DestinationPatch{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.Add(2 * time.Hour))
	f.expectDigests(0)
	if s, reason, _ := f.status(id); s != "dead" || !strings.Contains(reason, "disabled") {
		t.Errorf("status %s (%s), want dead: disabled", s, reason)
	}
	if _, err := f.st.UpdateDestination(f.ctx, f.userID, f.destID, store.DestinationPatch{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	f.expectDigests(0)
}

// TestDigestClaimAllOrNothing: two workers that read the same next digest
// cannot both claim it: the second claim takes nothing (no digest row, no
// item moved) and reports false, so its worker reads again.
func TestDigestClaimAllOrNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.setPolicy(`{"mode":"digest","every":"1h"}`)
	for i := range 3 {
		if err := f.work(f.worker(), f.notify(nil, bodhiMeta(i)), 1); err != nil {
			t.Fatal(err)
		}
	}
	a, err := f.st.NextDigest(f.ctx, f.destID, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.st.NextDigest(f.ctx, f.destID, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || len(a.Items) != 3 || len(b.Items) != 3 {
		t.Fatalf("next digests %d (%d items) and %d (%d items)", a.ID, len(a.Items), b.ID, len(b.Items))
	}
	if ok, err := f.st.ClaimDigest(f.ctx, a); err != nil || !ok {
		t.Fatalf("first claim: %v, %v", ok, err)
	}
	if ok, err := f.st.ClaimDigest(f.ctx, b); err != nil || ok {
		t.Fatalf("second claim of the same items: %v, %v; want false", ok, err)
	}
	ds, err := f.st.ListDigests(f.ctx, f.destID)
	if err != nil || len(ds) != 1 || ds[0].ID != a.ID || ds[0].Items != 3 {
		t.Fatalf("digests %+v (%v), want the first alone", ds, err)
	}
	if _, err := f.st.NextDigest(f.ctx, f.destID, 1, 10); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("next digest after the claim: %v, want not found", err)
	}
}
