package web

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"fmn"
	"fmn/metrics"
	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

// TestOpenAPIMatchesRouter holds web/openapi.json to the server: every
// /api/v1 route the chi router has is documented with its methods, every
// documented path is routed with exactly those, and each schema has the
// properties the Go type it describes encodes. A route or a field added
// without its description fails here.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}

	srv, err := New(Deps{Store: storetest.New(t), Metrics: metrics.New(), BaseURL: "http://fmn.test", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	mux, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("the handler is a %T, not chi's router", h)
	}
	routed := map[string][]string{}
	err = chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.TrimSuffix(strings.ReplaceAll(route, "/*/", "/"), "/*")
		if strings.HasPrefix(route, "/api/v1/") {
			routed[route] = append(routed[route], strings.ToLower(method))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routed) < 10 {
		t.Fatalf("walked only %v", routed)
	}
	documented := map[string][]string{}
	for path, item := range doc.Paths {
		for k := range item {
			if k != "parameters" && k != "summary" && k != "description" {
				documented[path] = append(documented[path], k)
			}
		}
	}
	for _, m := range []map[string][]string{routed, documented} {
		for _, ms := range m {
			sort.Strings(ms)
		}
	}
	for path, ms := range routed {
		if !slices.Equal(ms, documented[path]) {
			t.Errorf("%s: routed %v, documented %v", path, ms, documented[path])
		}
	}
	for path, ms := range documented {
		if _, ok := routed[path]; !ok {
			t.Errorf("%s (%v) is documented but not routed", path, ms)
		}
	}

	// Each schema names the JSON fields of its Go type, no more, no less.
	types := map[string]any{
		"Error": apiError{}, "User": store.User{}, "Policy": fmn.Policy{}, "Destination": fmn.Destination{},
		"NewDestination": newDestination{}, "DestinationPatch": destinationPatch{}, "ConfirmBody": confirmBody{},
		"Track": rules.Track{}, "Filters": rules.Filters{}, "RuleBody": ruleBody{}, "Rule": rules.Rule{},
		"Message": fmn.Message{}, "Hit": fmn.Hit{}, "Notification": fmn.Notification{}, "Preview": store.Preview{},
		"Membership": store.Membership{},
	}
	for name, v := range types {
		sc, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var props []string
		for p := range sc.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if fields := jsonFields(reflect.TypeOf(v)); !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v; %T encodes %v", name, props, v, fields)
		}
		for _, r := range sc.Required {
			if _, ok := sc.Properties[r]; !ok {
				t.Errorf("schema %s requires %s, which it does not describe", name, r)
			}
		}
	}

	// It is served, without a token.
	hs := httptest.NewServer(h)
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != string(openAPISpec) {
		t.Fatalf("GET /api/v1/openapi.json: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
}

// jsonFields lists the names encoding/json gives t's exported fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
