// Package irc is fmn's IRC channel: one bot connection to the network that
// delivers notifications as private messages, paced and in turn, and
// answers what users say to it. Its test server is irctest (a real
// ngircd).
package irc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fmn"
	"fmn/delivery"
)

// Channel sends through the Bot; it is a delivery.Channel.
type Channel struct {
	Bot *Bot
}

// While the bot is offline (the network is down, or the bot is between
// reconnections) jobs wait without spending attempts, looking again every
// offlineRecheck.
const offlineRecheck = 15 * time.Second

// Route: IRC has its own queue, so a network outage holds back IRC only.
// Jobs mostly wait for their turn in the bot's paced queues (at most
// Workers lines of 400 ms: 80 s), which the timeout covers; many in flight
// let a burst fold into one "N more" line. An IRC line is news of the
// moment: eight attempts, and a line not sent within an hour (the bot
// offline all that time) is dropped rather than sent late. With a Lock, the
// queue is worked only by the process holding it (Later).
func (c *Channel) Route() delivery.Route {
	return delivery.Route{Kind: fmn.KindIRC, Channel: c, Attempts: 8, Timeout: 2 * time.Minute, Workers: 200,
		Backoff: 10 * time.Second, MaxBackoff: 30 * time.Minute, Stale: time.Hour, Later: c.Bot.Lock != nil}
}

// Send implements delivery.Channel: one line, "[app] summary — link", cut
// to fit the 512 bytes the recipient's server relays. The claim is made
// when the bot's writer takes the line to the connection.
func (c *Channel) Send(ctx context.Context, d fmn.Destination, n fmn.Notification, claim delivery.Claim) error {
	app, summary, link := delivery.Headline(n.Message)
	line := WithWhy(app, summary, link, delivery.WhyURL(c.Bot.Settings.BaseURL, n.ID), TextBudget(c.Bot.Nick(), d.Address))
	return c.Bot.Deliver(ctx, d.Address, line, claim)
}

// Confirm implements delivery.Channel: the link, and the code to say back
// to the bot.
func (c *Channel) Confirm(ctx context.Context, d fmn.Destination, owner, code string) error {
	base := c.Bot.Settings.BaseURL
	return c.Bot.Say(ctx, d.Address, fmt.Sprintf("fmn: %s asked to send notifications to this nick. To accept, open %s/confirm/%s or reply: confirm %s — not you? Ignore this.",
		delivery.Clean(owner), base, code, code))
}

// Tell implements delivery.Channel: one line, "title: text", cut to fit.
func (c *Channel) Tell(ctx context.Context, d fmn.Destination, n delivery.Note) error {
	return c.Bot.Say(ctx, d.Address, delivery.CutAtWord(n.Line(), TextBudget(c.Bot.Nick(), d.Address)))
}

// Classify implements delivery.Channel: the bot offline means waiting;
// anything else (a connection lost with the line queued) is retried.
func (c *Channel) Classify(err error) delivery.Verdict {
	if errors.Is(err, ErrOffline) {
		return delivery.Verdict{Outcome: delivery.RateLimited, RetryAfter: offlineRecheck}
	}
	return delivery.Verdict{Outcome: delivery.Temporary}
}
