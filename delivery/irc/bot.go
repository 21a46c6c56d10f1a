package irc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ergochat/irc-go/ircevent"
	"github.com/ergochat/irc-go/ircmsg"

	"fmn"
	"fmn/delivery"
)

// ErrOffline: the bot is not connected to the network right now; the
// job is retried later.
var ErrOffline = errors.New("the IRC bot is not connected")

// Pacing defaults. ngircd reads about three commands a second from a client
// and delays the rest (measured: lines 4–6 of a burst arrive a second after
// 1–3); other servers are stricter (Libera's burst of five, then one line per
// two seconds without a flood exemption). 400 ms a line stays below ngircd
// with room for PONGs. A nick gets three lines of its own per minute; past
// that, what is waiting becomes one "N more" line pointing at the history, so
// one user's burst neither floods them nor delays everyone else.
const (
	DefaultIRCInterval    = 400 * time.Millisecond
	DefaultIRCBurstLines  = 3
	DefaultIRCBurstWindow = time.Minute
	ircMaxReplies         = 5 // direct lines (replies) waiting per nick
)

// Settings are the parts of the configuration the bot needs.
type Settings struct {
	URL     string // irc://[user:password@]host:port or ircs://…
	Nick    string
	BaseURL string
	// TLSConfig for ircs://; nil uses the system roots.
	TLSConfig *tls.Config
}

// Bot is fmn's one connection to an IRC network. It delivers lines to
// nicks through per-nick queues served round-robin at a paced rate, and
// answers the commands users send it by private message.
type Bot struct {
	Settings Settings
	// Commands answers users' private messages.
	Commands *delivery.Commands
	Log      *slog.Logger

	// Lock, when set, is taken before connecting and held while connected
	// (see store.HoldLock), so that however many processes run a bot, one
	// connection speaks for fmn on the network. OnLead is told when this
	// process starts and stops being the one (it starts and stops working
	// the irc queue).
	Lock   func(ctx context.Context) (lost <-chan struct{}, release func(), err error)
	OnLead func(leading bool)

	Interval    time.Duration // gap between two lines; DefaultIRCInterval if 0
	BurstLines  int           // a nick's own lines per BurstWindow; DefaultIRCBurstLines if 0
	BurstWindow time.Duration

	mu        sync.Mutex
	conn      *ircevent.Connection // nil while disconnected
	queues    map[string]*nickQueue
	ring      []string // folded nicks with something waiting, in serving order
	wake      chan struct{}
	cmdSem    chan struct{}
	connected chan struct{} // closed and replaced on each registration
	cmdCtx    context.Context

	connects, pings atomic.Int64 // registrations, and server PINGs answered
}

// Stats reports how many times the bot registered on the network and how
// many keep-alive PINGs from the server it answered.
func (b *Bot) Stats() (connects, pings int64) { return b.connects.Load(), b.pings.Load() }

type ircItem struct {
	text      string
	claim     delivery.Claim // nil: the bot's own line, nothing to claim
	record    func(error)    // set by a successful claim
	done      chan error     // buffered: the writer never blocks on it
	cancelled atomic.Bool
}

type nickQueue struct {
	nick   string
	direct []*ircItem // replies and confirmations: never folded
	notes  []*ircItem // notifications: folded into "N more" past the burst
	sent   []time.Time
}

func (b *Bot) init() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queues != nil {
		return
	}
	if b.Interval == 0 {
		b.Interval = DefaultIRCInterval
	}
	if b.BurstLines == 0 {
		b.BurstLines = DefaultIRCBurstLines
	}
	if b.BurstWindow == 0 {
		b.BurstWindow = DefaultIRCBurstWindow
	}
	b.queues = map[string]*nickQueue{}
	b.wake = make(chan struct{}, 1)
	b.cmdSem = make(chan struct{}, 8)
	b.connected = make(chan struct{})
}

// Connected returns a channel closed once the bot is registered on the
// network (now, or at its next connection).
func (b *Bot) Connected() <-chan struct{} {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return b.connected
}

// Nick is the nick the bot has now (the configured one, or a variant while
// that is taken).
func (b *Bot) Nick() string {
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c != nil {
		if n := c.CurrentNick(); n != "" {
			return n
		}
	}
	return b.Settings.Nick
}

// Run keeps the bot connected until ctx ends: it waits for the Lock if
// there is one, then connects and reconnects with backoff.
func (b *Bot) Run(ctx context.Context) error {
	b.init()
	b.mu.Lock()
	b.cmdCtx = ctx
	b.mu.Unlock()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); b.writeLoop(ctx) }()
	defer func() { <-writerDone }()

	for ctx.Err() == nil {
		var lost <-chan struct{} // nil: never lost
		release := func() {}
		if b.Lock != nil {
			var err error
			if lost, release, err = b.Lock(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				b.Log.Error("IRC bot lock failed, retrying", "err", err)
				t := time.NewTimer(5 * time.Second)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
				continue
			}
			b.Log.Info("this process speaks for fmn on IRC")
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				b.Log.Warn("IRC bot lock lost (database connection gone): disconnecting")
				cancel()
			case <-lctx.Done():
			}
		}()
		if b.OnLead != nil {
			b.OnLead(true)
		}
		err := b.connectLoop(lctx)
		cancel()
		if b.OnLead != nil && ctx.Err() == nil {
			b.OnLead(false)
		}
		release()
		if err != nil {
			return err
		}
	}
	return nil
}

// connectLoop keeps the bot connected until ctx ends, reconnecting with
// backoff (1 s doubling to 5 min, reset after a connection that lasted a
// minute).
func (b *Bot) connectLoop(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		c, err := b.newConn()
		if err != nil {
			return err
		}
		started := time.Now()
		if err := c.Connect(); err != nil {
			b.Log.Warn("IRC connection failed", "server", c.Server, "err", err, "retry_in", backoff)
		} else {
			b.Log.Info("IRC bot connected", "server", c.Server, "nick", c.CurrentNick())
			b.setConn(c)
			loopDone := make(chan struct{})
			go func() { defer close(loopDone); c.Loop() }()
			select {
			case <-ctx.Done():
				c.Quit()
				<-loopDone
			case <-loopDone:
			}
			b.setConn(nil)
			b.failAll(ErrOffline)
			if ctx.Err() != nil {
				break
			}
			b.Log.Warn("IRC bot disconnected", "server", c.Server, "retry_in", backoff)
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, 5*time.Minute)
	}
	return nil
}

// newConn builds one connection attempt. Each attempt is a fresh
// irc-go Connection whose own reconnect loop is cut short (a disconnect
// ends it), so that Run's backoff decides when to try again.
func (b *Bot) newConn() (*ircevent.Connection, error) {
	u, err := url.Parse(b.Settings.URL)
	if err != nil || (u.Scheme != "irc" && u.Scheme != "ircs") || u.Hostname() == "" {
		return nil, fmt.Errorf("IRC URL: want irc://host:port or ircs://host:port")
	}
	host := u.Host
	if u.Port() == "" {
		host += map[string]string{"irc": ":6667", "ircs": ":6697"}[u.Scheme]
	}
	c := &ircevent.Connection{
		Server:        host,
		Nick:          b.Settings.Nick,
		User:          "fmn",
		RealName:      "fmn notifications — say help",
		UseTLS:        u.Scheme == "ircs",
		TLSConfig:     b.Settings.TLSConfig,
		Timeout:       30 * time.Second,
		KeepAlive:     2 * time.Minute,
		ReconnectFreq: time.Hour, // never reached: a disconnect quits
		QuitMessage:   "fmn stopping",
		Log:           log.New(io.Discard, "", 0),
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		c.UseSASL, c.SASLLogin, c.SASLPassword, c.SASLMech = true, u.User.Username(), pw, "PLAIN"
	}
	c.AddDisconnectCallback(func(ircmsg.Message) { c.Quit() })
	c.AddCallback("PRIVMSG", func(m ircmsg.Message) { b.onPrivmsg(c, m) })
	// irc-go answers the server's PING itself; count them.
	c.AddCallback("PING", func(ircmsg.Message) { b.pings.Add(1) })
	return c, nil
}

func (b *Bot) setConn(c *ircevent.Connection) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn = c
	if c != nil {
		b.connects.Add(1)
		close(b.connected)
		b.connected = make(chan struct{})
	}
}

// failAll answers everything waiting with err: lines queued for a
// connection that is gone are retried by their jobs, not sent late into a
// new one.
func (b *Bot) failAll(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		for _, it := range append(q.direct, q.notes...) {
			it.done <- err
		}
	}
	b.queues = map[string]*nickQueue{}
	b.ring = nil
}

func (b *Bot) enqueue(nick, text string, note bool, claim delivery.Claim) (*ircItem, error) {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil, ErrOffline
	}
	key := fmn.FoldNick(nick)
	if len(b.queues) > 1000 {
		b.forgetIdle(time.Now())
	}
	q := b.queues[key]
	if q == nil {
		q = &nickQueue{nick: nick}
		b.queues[key] = q
	}
	if len(q.direct) == 0 && len(q.notes) == 0 {
		b.ring = append(b.ring, key)
	}
	it := &ircItem{text: text, claim: claim, done: make(chan error, 1)}
	if note {
		q.notes = append(q.notes, it)
	} else {
		if len(q.direct) >= ircMaxReplies {
			return nil, fmt.Errorf("too many lines waiting for %s", nick)
		}
		q.direct = append(q.direct, it)
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return it, nil
}

func (b *Bot) wait(ctx context.Context, it *ircItem) error {
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		it.cancelled.Store(true)
		return ctx.Err()
	}
}

// Deliver sends a notification line to nick and returns once it, or the
// "N more" line standing for it, is handed to the connection. The writer
// calls claim when it takes the line, just before writing it; a claim
// reporting false drops the line (and Deliver returns nil).
func (b *Bot) Deliver(ctx context.Context, nick, text string, claim delivery.Claim) error {
	it, err := b.enqueue(nick, text, true, claim)
	if err != nil {
		return err
	}
	return b.wait(ctx, it)
}

// Say sends a line of the bot's own (a confirmation, a reply) to nick and
// waits until it is handed to the connection.
func (b *Bot) Say(ctx context.Context, nick, text string) error {
	it, err := b.enqueue(nick, text, false, nil)
	if err != nil {
		return err
	}
	return b.wait(ctx, it)
}

// writeLoop sends one line per Interval, taking nicks in turn.
func (b *Bot) writeLoop(ctx context.Context) {
	var last time.Time
	var held time.Duration // every waiting nick is held back this long yet
	for {
		b.mu.Lock()
		pending := len(b.ring) > 0
		b.mu.Unlock()
		if !pending || held > 0 {
			due := time.NewTimer(held)
			if !pending {
				due.Stop() // nothing to wait for but a wake
			}
			held = 0
			select {
			case <-ctx.Done():
				due.Stop()
				return
			case <-b.wake:
			case <-due.C:
			}
			due.Stop()
			continue
		}
		if d := time.Until(last.Add(b.Interval)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		b.mu.Lock()
		conn := b.conn
		nick, text, items, wait := b.next(time.Now())
		b.mu.Unlock()
		if len(items) == 0 {
			held = wait
		}
		folded := len(items) > 1
		if items = b.claim(ctx, items); len(items) == 0 {
			continue
		}
		if folded {
			text = MoreLine(len(items), b.Settings.BaseURL+"/")
		}
		var err error
		if conn == nil {
			err = ErrOffline
		} else if err = conn.Privmsg(nick, text); err != nil {
			err = fmt.Errorf("send to %s: %w", nick, err)
		}
		last = time.Now()
		for _, it := range items {
			if it.record != nil {
				it.record(err)
			}
			it.done <- err
		}
	}
}

// claim claims the items about to be written and returns those that may
// go; the others are answered at once (nil when the notification was sent
// or given up meanwhile, the error when the claim failed). The claim is
// made here, with the line's turn in hand, so that a process killed while
// lines wait leaves nothing claimed but the line being written.
func (b *Bot) claim(ctx context.Context, items []*ircItem) []*ircItem {
	out := items[:0]
	for _, it := range items {
		if it.claim == nil {
			out = append(out, it)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		record, err := it.claim(cctx)
		cancel()
		if record == nil {
			it.done <- err
			continue
		}
		it.record = record
		out = append(out, it)
	}
	return out
}

// next takes the line to send now from the first nick in turn that has
// one: its oldest reply, else its oldest notification while the nick is
// within its burst, else one "N more" line for all its waiting
// notifications (or the one waiting, alone). Past its burst a nick gets
// that "N more" line at once, and then one line per pace, however its
// notifications come: one at a time, as each line leaves, they would
// otherwise each get a line (a trickle flooding the nick). When every
// waiting nick is held back, wait is how long until the first may go.
// Call with mu.
func (b *Bot) next(now time.Time) (nick, text string, items []*ircItem, wait time.Duration) {
	pace := b.BurstWindow / time.Duration(b.BurstLines)
	for n := len(b.ring); n > 0; n-- {
		key := b.ring[0]
		b.ring = b.ring[1:]
		q := b.queues[key]
		if q == nil {
			continue
		}
		q.direct = live(q.direct)
		q.notes = live(q.notes)
		switch {
		case len(q.direct) > 0:
			items, q.direct = q.direct[:1], q.direct[1:]
			text = items[0].text
		case len(q.notes) > 0:
			i := 0
			for i < len(q.sent) && now.Sub(q.sent[i]) >= b.BurstWindow {
				i++
			}
			q.sent = q.sent[i:]
			since := time.Duration(0)
			if len(q.sent) > 0 {
				since = now.Sub(q.sent[len(q.sent)-1])
			}
			switch {
			case len(q.sent) < b.BurstLines:
				items, q.notes = q.notes[:1], q.notes[1:]
				text = items[0].text
			case since < pace && (len(q.sent) > b.BurstLines || len(q.notes) == 1):
				// Held back: past the burst's one "N more" line, or one
				// notification that others may join in the line.
				if held := pace - since; wait == 0 || held < wait {
					wait = held
				}
			case len(q.notes) == 1:
				items, q.notes = q.notes, nil
				text = items[0].text
			default:
				items, q.notes = q.notes, nil
				text = MoreLine(len(items), b.Settings.BaseURL+"/")
			}
			if len(items) > 0 {
				q.sent = append(q.sent, now)
			}
		}
		if len(q.direct) > 0 || len(q.notes) > 0 {
			b.ring = append(b.ring, key)
		} else if len(q.sent) == 0 || now.Sub(q.sent[len(q.sent)-1]) >= b.BurstWindow {
			delete(b.queues, key)
		}
		if len(items) > 0 {
			return q.nick, text, items, 0
		}
	}
	return "", "", nil, wait
}

func live(items []*ircItem) []*ircItem {
	out := items[:0]
	for _, it := range items {
		if !it.cancelled.Load() {
			out = append(out, it)
		}
	}
	return out
}

// forgetIdle drops the queues of nicks with nothing waiting and no line
// within the burst window. Call with mu.
func (b *Bot) forgetIdle(now time.Time) {
	for key, q := range b.queues {
		if len(q.direct) == 0 && len(q.notes) == 0 && (len(q.sent) == 0 || now.Sub(q.sent[len(q.sent)-1]) >= b.BurstWindow) {
			delete(b.queues, key)
		}
	}
}

// Online reports whether the bot is connected and registered now.
func (b *Bot) Online() bool {
	b.init()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn != nil
}
