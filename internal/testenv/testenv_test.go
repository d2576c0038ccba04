package testenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	seen := make(map[string]bool)
	for range 1000 {
		n := UniqueName("connections")
		if !strings.HasPrefix(n, "connections-") || !valid.MatchString(n) {
			t.Fatalf("UniqueName = %q, not a valid table name with the prefix", n)
		}
		if seen[n] {
			t.Fatalf("UniqueName repeated %q", n)
		}
		seen[n] = true
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "testenv.go")); err != nil {
		t.Errorf("RepoRoot = %q, which does not hold this package: %v", root, err)
	}
}

func TestDynalite(t *testing.T) {
	endpoint := Dynalite(t)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(endpoint) {
		t.Errorf("endpoint %q, want http://127.0.0.1:PORT", endpoint)
	}
	if again := Dynalite(t); again != endpoint {
		t.Errorf("second call gave %q, want the same server %q", again, endpoint)
	}
	cfg := AWSConfig(t, endpoint)
	if cfg.Region != Region {
		t.Errorf("region %q", cfg.Region)
	}
	if os.Getenv("AWS_EC2_METADATA_DISABLED") != "true" {
		t.Error("AWS_EC2_METADATA_DISABLED is not set")
	}
	client := dynamodb.NewFromConfig(cfg)
	if _, err := client.ListTables(t.Context(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables on dynalite: %v", err)
	}
}
