package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircevent"
	"github.com/ergochat/irc-go/ircmsg"

	"fmn/apperr"
	"fmn/store"
)

// Commands: a nick may send this many in a minute; the rest are ignored, so
// nobody can make the bot flood itself off the network by talking to it.
const ircCommandsPerMinute = 6

// onPrivmsg runs on irc-go's reader goroutine: it only filters and hands the
// command to a goroutine of its own.
func (b *IRCBot) onPrivmsg(c *ircevent.Connection, m ircmsg.Message) {
	if len(m.Params) < 2 || store.FoldNick(m.Params[0]) != store.FoldNick(c.CurrentNick()) {
		return // a channel message, or not for us
	}
	from, text := m.Nick(), m.Params[1]
	if from == "" || strings.HasPrefix(text, "\x01") || !ValidNick(from) {
		return // CTCP (VERSION, PING…) and server notices get no answer
	}
	now := time.Now()
	b.mu.Lock()
	key := store.FoldNick(from)
	times := b.cmdTimes[key]
	i := 0
	for i < len(times) && now.Sub(times[i]) >= time.Minute {
		i++
	}
	times = times[i:]
	allowed := len(times) < ircCommandsPerMinute
	if allowed {
		times = append(times, now)
	}
	b.cmdTimes[key] = times
	if len(b.cmdTimes) > 10000 {
		clear(b.cmdTimes)
	}
	ctx := b.cmdCtx
	b.mu.Unlock()
	if !allowed || ctx == nil {
		return
	}
	select {
	case b.cmdSem <- struct{}{}:
	default:
		return // busy: dropping beats blocking the reader
	}
	go func() {
		defer func() { <-b.cmdSem }()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for _, line := range b.command(cctx, from, text) {
			if err := b.Say(cctx, from, line); err != nil {
				b.Log.Debug("IRC reply not sent", "nick", from, "err", err)
				return
			}
		}
	}()
}

// command runs one command from nick and returns the reply lines.
func (b *IRCBot) command(ctx context.Context, nick, text string) []string {
	fields := strings.Fields(IRCClean(text))
	if len(fields) == 0 {
		return nil
	}
	cmd, args := strings.ToLower(fields[0]), fields[1:]
	fail := func(err error) []string {
		b.Log.Error("IRC command failed", "nick", nick, "command", cmd, "err", err)
		return []string{"Sorry, that failed on fmn's side; try again later."}
	}
	switch cmd {
	case "help":
		return []string{
			"I send fmn notifications (" + b.Settings.BaseURL + "/). Commands: status · mute 2h (or 30m, 1d) · unmute · stop (no more notifications to this nick) · confirm CODE",
		}
	case "confirm":
		if len(args) != 1 {
			return []string{"Say: confirm CODE (the code from the confirmation message)."}
		}
		d, err := b.Store.ConfirmIRC(ctx, nick, args[0])
		if errors.Is(err, apperr.ErrNotFound) {
			return []string{"That code is wrong or has expired (or was sent to another nick)."}
		}
		if err != nil {
			return fail(err)
		}
		owner, err := b.Store.UserName(ctx, d.UserID)
		if err != nil {
			return fail(err)
		}
		return []string{"Confirmed: this nick now receives " + owner + "'s fmn notifications. Say help for commands."}
	case "mute":
		if len(args) != 1 {
			return []string{"Say: mute 2h (minutes m, hours h or days d, up to 30d)."}
		}
		d, ok := parseMute(args[0])
		if !ok {
			return []string{"Say: mute 2h (minutes m, hours h or days d, up to 30d)."}
		}
		until := time.Now().Add(d).UTC().Truncate(time.Second)
		n, err := b.Store.MuteIRC(ctx, nick, &until)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"This nick receives no fmn notifications."}
		}
		return []string{"Muted until " + until.Format("2006-01-02 15:04 MST") + ". Say unmute to end it sooner."}
	case "unmute":
		n, err := b.Store.MuteIRC(ctx, nick, nil)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"This nick receives no fmn notifications."}
		}
		return []string{"Unmuted."}
	case "stop":
		n, err := b.Store.StopIRC(ctx, nick)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return []string{"Nothing to stop: no fmn notifications are enabled for this nick."}
		}
		return []string{"Stopped: no more fmn notifications to this nick. Its owner can turn them back on at " + b.Settings.BaseURL + "/destinations"}
	case "status":
		ds, err := b.Store.IRCDestinations(ctx, nick)
		if err != nil {
			return fail(err)
		}
		if len(ds) == 0 {
			return []string{"This nick receives no fmn notifications."}
		}
		var out []string
		for _, d := range ds[:min(len(ds), 3)] {
			owner, err := b.Store.UserName(ctx, d.UserID)
			if err != nil {
				return fail(err)
			}
			state := []string{}
			switch {
			case !d.Enabled:
				state = append(state, "stopped")
			case !d.Confirmed:
				state = append(state, "waiting for confirmation")
			default:
				state = append(state, "active")
			}
			if d.MutedUntil != nil && d.MutedUntil.After(time.Now()) {
				state = append(state, "muted until "+d.MutedUntil.UTC().Format("2006-01-02 15:04 MST"))
			}
			out = append(out, fmt.Sprintf("For %s: %s.", owner, strings.Join(state, ", ")))
		}
		if len(ds) > 3 {
			out = append(out, strconv.Itoa(len(ds)-3)+" more users send to this nick.")
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
