package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"fmn"
	"fmn/apperr"
	"fmn/store"
)

// Commands answers what users say to a chat channel's bot (IRC, Matrix):
// help, status, mute, unmute, stop and confirm, about the destinations of
// that channel at the speaker's address.
type Commands struct {
	Kind    fmn.Kind
	Store   *store.Store
	BaseURL string
	Log     *slog.Logger

	mu    sync.Mutex
	times map[string][]time.Time
}

// CommandsPerMinute: an address may have this many commands answered in a
// minute; the rest are ignored, so nobody can make the bot flood itself off
// the network by talking to it.
const CommandsPerMinute = 6

// Allow reports whether a command from address is answered now, counting
// it.
func (c *Commands) Allow(address string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.times == nil || len(c.times) > 10000 {
		c.times = map[string][]time.Time{}
	}
	key := fmn.AddressKey(c.Kind, address)
	times := c.times[key]
	i := 0
	for i < len(times) && now.Sub(times[i]) >= time.Minute {
		i++
	}
	times = times[i:]
	ok := len(times) < CommandsPerMinute
	if ok {
		times = append(times, now)
	}
	c.times[key] = times
	return ok
}

func (c *Commands) noun() string {
	if c.Kind == fmn.KindIRC {
		return "nick"
	}
	return "account"
}

// Reply runs one command said by address (a nick, a Matrix user) and
// returns the reply lines.
func (c *Commands) Reply(ctx context.Context, nick, text string) []string {
	fields := strings.Fields(Clean(text))
	if len(fields) == 0 {
		return nil
	}
	cmd, args := strings.ToLower(fields[0]), fields[1:]
	fail := func(err error) []string {
		c.Log.Error("chat command failed", "channel", c.Kind, "address", nick, "command", cmd, "err", err)
		return []string{"Sorry, that failed on fmn's side; try again later."}
	}
	switch cmd {
	case "help":
		return []string{
			"I send fmn notifications (" + c.BaseURL + "/). Commands: status · mute 2h (or 30m, 1d) · unmute · stop (no more notifications to this " + c.noun() + ") · confirm CODE",
		}
	case "confirm":
		if len(args) != 1 {
			return []string{"Say: confirm CODE (the code from the confirmation message)."}
		}
		d, err := c.Store.ConfirmAt(ctx, c.Kind, nick, args[0])
		if errors.Is(err, apperr.ErrNotFound) {
			return []string{"That code is wrong or has expired (or was sent to another " + c.noun() + ")."}
		}
		if err != nil {
			return fail(err)
		}
		owner, err := c.Store.UserName(ctx, d.UserID)
		if err != nil {
			return fail(err)
		}
		return []string{"Confirmed: this " + c.noun() + " now receives " + owner + "'s fmn notifications. Say help for commands."}
	case "mute":
		if len(args) != 1 {
			return []string{"Say: mute 2h (minutes m, hours h or days d, up to 30d)."}
		}
		d, ok := parseMute(args[0])
		if !ok {
			return []string{"Say: mute 2h (minutes m, hours h or days d, up to 30d)."}
		}
		until := time.Now().Add(d).UTC().Truncate(time.Second)
		n, err := c.Store.MuteAt(ctx, c.Kind, nick, &until)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"This " + c.noun() + " receives no fmn notifications."}
		}
		return []string{"Muted until " + until.Format("2006-01-02 15:04 MST") + ". Say unmute to end it sooner."}
	case "unmute":
		n, err := c.Store.MuteAt(ctx, c.Kind, nick, nil)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"This " + c.noun() + " receives no fmn notifications."}
		}
		return []string{"Unmuted."}
	case "stop":
		n, err := c.Store.StopAt(ctx, c.Kind, nick, "stopped by its user on "+c.channelName())
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"Nothing to stop: no fmn notifications are enabled for this " + c.noun() + "."}
		}
		return []string{"Stopped: no more fmn notifications to this " + c.noun() + ". Its owner can turn them back on at " + c.BaseURL + "/destinations"}
	case "status":
		all, err := c.Store.DestinationsAt(ctx, c.Kind, nick)
		if err != nil {
			return fail(err)
		}
		// Only what this nick confirmed itself: that someone merely added
		// it (and whom) is not the nick's owner's to learn.
		var ds []fmn.Destination
		for _, d := range all {
			if d.Confirmed {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			return []string{"This " + c.noun() + " receives no fmn notifications."}
		}
		var out []string
		for _, d := range ds[:min(len(ds), 3)] {
			owner, err := c.Store.UserName(ctx, d.UserID)
			if err != nil {
				return fail(err)
			}
			state := []string{}
			switch {
			case !d.Enabled:
				state = append(state, "stopped")
			default:
				state = append(state, "active")
			}
			if d.MutedUntil != nil && d.MutedUntil.After(time.Now()) {
				state = append(state, "muted until "+d.MutedUntil.UTC().Format("2006-01-02 15:04 MST"))
			}
			out = append(out, fmt.Sprintf("For %s: %s.", owner, strings.Join(state, ", ")))
		}
		if len(ds) > 3 {
			out = append(out, strconv.Itoa(len(ds)-3)+" more users send to this "+c.noun()+".")
		}
		return out
	}
	return []string{"Unknown command. Say help."}
}

// parseMute reads "30m", "2h", "1d" (1 minute to 30 days).
func parseMute(s string) (time.Duration, bool) {
	s = strings.ToLower(s)
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, false
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, false
		}
	}
	return d, d >= time.Minute && d <= 30*24*time.Hour
}

func (c *Commands) channelName() string {
	if c.Kind == fmn.KindIRC {
		return "IRC"
	}
	return "Matrix"
}
