package irc

import (
	"context"
	"strings"
	"time"

	"github.com/ergochat/irc-go/ircevent"
	"github.com/ergochat/irc-go/ircmsg"

	"fmn"
)

// onPrivmsg runs on irc-go's reader goroutine: it only filters and hands the
// command to a goroutine of its own.
func (b *Bot) onPrivmsg(c *ircevent.Connection, m ircmsg.Message) {
	if len(m.Params) < 2 || fmn.FoldNick(m.Params[0]) != fmn.FoldNick(c.CurrentNick()) {
		return // a channel message, or not for us
	}
	from, text := m.Nick(), m.Params[1]
	if from == "" || strings.HasPrefix(text, "\x01") || !fmn.ValidNick(from) {
		return // CTCP (VERSION, PING…) and server notices get no answer
	}
	b.mu.Lock()
	ctx := b.cmdCtx
	b.mu.Unlock()
	if ctx == nil || !b.Commands.Allow(from, time.Now()) {
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
		for _, line := range b.Commands.Reply(cctx, from, text) {
			if err := b.Say(cctx, from, line); err != nil {
				b.Log.Debug("IRC reply not sent", "nick", from, "err", err)
				return
			}
		}
	}()
}
