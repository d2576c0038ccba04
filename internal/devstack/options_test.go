package devstack_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/workorders/notify/internal/devstack"
)

// The environment overrides the development defaults, and parameter
// overrides win over the environment.
func TestLocalValues(t *testing.T) {
	s := startStack(t, backends[0], map[string]string{
		"JWT_SECRET":      "from-the-environment-and-32-bytes-or-more",
		"ALLOWED_ORIGINS": "*",
		"RETENTION_DAYS":  "7", // a !Ref to a parameter: the environment gives it
	}, func(o *devstack.Options) {
		o.Parameters = map[string]string{"AllowedOrigins": "https://app.example.com"}
	})

	listed := http.Header{"Origin": {"https://app.example.com"}}
	devToken := mustSign(t, devstack.TokenClaims{Secret: devstack.DevSecret, Subject: "u1"})
	if c, status, _ := s.dial(t, devToken, listed); c != nil || status != http.StatusUnauthorized {
		t.Fatalf("token signed with the development secret: status %d, want 401", status)
	}
	if c, status, body := s.dial(t, s.token(t, "u1"), listed); c == nil {
		t.Fatalf("DevToken refused: %d %s", status, body)
	}
	if c, status, _ := s.dial(t, s.token(t, "u1"), http.Header{"Origin": {"https://other.example.com"}}); c != nil || status != http.StatusForbidden {
		t.Fatalf("origin outside the --param list: status %d, want 403", status)
	}
	// With a list, a browser must send a listed Origin (the token is in the query string).
	if c, status, _ := s.dial(t, s.token(t, "u1"), nil); c != nil || status != http.StatusForbidden {
		t.Fatalf("no Origin with an origin list: status %d, want 403", status)
	}

	pub := s.FunctionEnv("PublishFunction")
	if pub["MANAGEMENT_API_ENDPOINT"] != s.InvokeEndpoint() || !strings.HasPrefix(s.InvokeEndpoint(), "http://127.0.0.1:") {
		t.Errorf("MANAGEMENT_API_ENDPOINT %q, want the listen address %s", pub["MANAGEMENT_API_ENDPOINT"], s.InvokeEndpoint())
	}
	if pub["RETENTION_DAYS"] != "7" || pub["CONNECTIONS_TABLE"] != "ConnectionsTable" || pub["NOTIFICATIONS_TABLE"] != "NotificationsTable" {
		t.Errorf("PublishFunction environment %v", pub)
	}
	if s.URL() != "ws://"+s.Addr()+"/" || s.Storage() != "memory" {
		t.Errorf("URL %s, Addr %s, Storage %s", s.URL(), s.Addr(), s.Storage())
	}
}

func TestDevelopmentDefaults(t *testing.T) {
	s := startStack(t, backends[0], nil, nil)
	conn := s.FunctionEnv("ConnectFunction")
	if conn["JWT_SECRET"] != devstack.DevSecret || conn["ALLOWED_ORIGINS"] != "*" || conn["JWT_GROUPS_CLAIM"] != "groups" {
		t.Errorf("ConnectFunction environment %v", conn)
	}
	// ALLOWED_ORIGINS=* also lets a browser of any origin in.
	if c, status, body := s.dial(t, s.token(t, "u1"), http.Header{"Origin": {"https://anywhere.example"}}); c == nil {
		t.Fatalf("refused with ALLOWED_ORIGINS=*: %d %s", status, body)
	}
}

func TestStartErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, tc := range map[string]struct {
		opts devstack.Options
		want string
	}{
		"missing template":  {devstack.Options{TemplatePath: "no/such/template.yaml"}, "no/such/template.yaml"},
		"unknown parameter": {devstack.Options{Parameters: map[string]string{"NoSuchParam": "x"}}, "NoSuchParam"},
		"bad address":       {devstack.Options{Addr: "127.0.0.1:notaport"}, "127.0.0.1:notaport"},
		"bad retention":     {devstack.Options{Env: map[string]string{"RETENTION_DAYS": "soon"}}, "RETENTION_DAYS"},
	} {
		t.Run(name, func(t *testing.T) {
			opts := tc.opts
			opts.Logger = newLogger()
			if opts.Addr == "" {
				opts.Addr = "127.0.0.1:0"
			}
			if opts.Env == nil {
				opts.Env = map[string]string{}
			}
			s, err := devstack.Start(ctx, opts)
			if err == nil {
				s.Shutdown(ctx)
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// Without a template in the working directory, the nearest one up to the
// module root is used.
func TestFindTemplate(t *testing.T) {
	got, err := devstack.FindTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("../../template.yaml")
	if got != want {
		t.Fatalf("FindTemplate = %s, want %s", got, want)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644)
	t.Chdir(dir)
	if _, err := devstack.FindTemplate(""); err == nil || !strings.Contains(err.Error(), "--template") {
		t.Fatalf("FindTemplate outside a repository with a template: %v", err)
	}
}
