package config

import (
	"strings"
	"testing"
)

func TestOIDCSettings(t *testing.T) {
	t.Parallel()
	c, err := Load("", []string{"FMN_OIDC_ISSUER=https://id.example.org/", "FMN_OIDC_CLIENT_ID=fmn", "FMN_OIDC_CLIENT_SECRET=s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OIDCIssuer != "https://id.example.org" || c.OIDCUsernameClaim != DefaultOIDCUsernameClaim {
		t.Fatalf("OIDC settings: %+v", c)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"FMN_OIDC_ISSUER=https://id.example.org"}, "FMN_OIDC_CLIENT_ID: required"},
		{[]string{"FMN_OIDC_CLIENT_ID=fmn"}, "FMN_OIDC_ISSUER: required"},
		{[]string{"FMN_OIDC_ISSUER=id.example.org", "FMN_OIDC_CLIENT_ID=fmn"}, "FMN_OIDC_ISSUER: \"id.example.org\" is not an http(s) URL"},
	} {
		if _, err := Load("", tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.env, err, tc.want)
		}
	}
}
