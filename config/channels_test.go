package config

import (
	"strings"
	"testing"
)

func TestIRCAndPushSettings(t *testing.T) {
	t.Parallel()
	c, err := Load("", []string{"FMN_MAIL_FROM=fmn@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if c.PushSubject != "mailto:fmn@example.org" || c.VAPIDPublicKey != "" {
		t.Fatalf("push defaults: %+v", c)
	}
	c, err = Load("", []string{"FMN_IRC_URL=ircs://bot:secret@irc.example.net:6697", "FMN_IRC_NICK=fmn[bot]",
		"FMN_PUSH_SUBJECT=https://fmn.example.org/contact", "FMN_VAPID_PUBLIC_KEY=pub", "FMN_VAPID_PRIVATE_KEY=priv"})
	if err != nil {
		t.Fatal(err)
	}
	if c.IRCNick != "fmn[bot]" || c.VAPIDPrivateKey != "priv" || c.PushSubject != "https://fmn.example.org/contact" {
		t.Fatalf("settings: %+v", c)
	}
	for _, v := range c.LogValues() {
		if s, ok := v.(string); ok && strings.Contains(s, "secret") {
			t.Fatalf("the IRC password is logged: %v", c.LogValues())
		}
	}
	_, err = Load("", []string{"FMN_IRC_URL=irc://irc.example.net", "FMN_IRC_NICK=9bad nick",
		"FMN_VAPID_PUBLIC_KEY=only-one", "FMN_PUSH_SUBJECT=someone@example.org"})
	for _, want := range []string{"FMN_IRC_NICK", "FMN_VAPID_PUBLIC_KEY", "FMN_PUSH_SUBJECT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}
