package dynamo

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/workorders/notify/internal/samtemplate"
	"github.com/workorders/notify/internal/testenv"
)

// TestSchemaMatchesTemplate keeps the tables these tests create
// (CreateConnectionsTable, CreateNotificationsTable) identical to the ones
// template.yaml deploys: keys, attribute types, indexes and projections.
func TestSchemaMatchesTemplate(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	endpoint := testenv.Dynalite(t)
	client := dynamodb.NewFromConfig(testenv.AWSConfig(t, endpoint))
	for logicalID, create := range map[string]func(name string) error{
		"ConnectionsTable":   func(name string) error { return CreateConnectionsTable(t.Context(), client, name) },
		"NotificationsTable": func(name string) error { return CreateNotificationsTable(t.Context(), client, name) },
	} {
		t.Run(logicalID, func(t *testing.T) {
			want, ok := tmpl.Tables[logicalID]
			if !ok {
				t.Fatalf("template.yaml has no %s", logicalID)
			}
			if want.TTLAttribute != AttrExpiresAt {
				t.Errorf("template TTL attribute %q, the stores write %q", want.TTLAttribute, AttrExpiresAt)
			}
			name := testenv.UniqueName("schema")
			if err := create(name); err != nil {
				t.Fatal(err)
			}
			out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			got := out.Table
			if k, w := keys(got.KeySchema), templateKeys(want.KeySchema); !slices.Equal(k, w) {
				t.Errorf("key schema %v, template %v", k, w)
			}
			var gotAttrs, wantAttrs []string
			for _, a := range got.AttributeDefinitions {
				gotAttrs = append(gotAttrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
			}
			for _, a := range want.AttributeDefinitions {
				wantAttrs = append(wantAttrs, a.AttributeName+":"+a.AttributeType)
			}
			slices.Sort(gotAttrs)
			slices.Sort(wantAttrs)
			if !slices.Equal(gotAttrs, wantAttrs) {
				t.Errorf("attribute definitions %v, template %v", gotAttrs, wantAttrs)
			}
			if len(got.GlobalSecondaryIndexes) != len(want.GSIs) {
				t.Fatalf("%d indexes, template %d", len(got.GlobalSecondaryIndexes), len(want.GSIs))
			}
			for i, g := range want.GSIs {
				have := got.GlobalSecondaryIndexes[i]
				if aws.ToString(have.IndexName) != g.IndexName || string(have.Projection.ProjectionType) != g.ProjectionType ||
					!slices.Equal(keys(have.KeySchema), templateKeys(g.KeySchema)) {
					t.Errorf("index %s %v %s, template %s %v %s", aws.ToString(have.IndexName), keys(have.KeySchema),
						have.Projection.ProjectionType, g.IndexName, templateKeys(g.KeySchema), g.ProjectionType)
				}
			}
		})
	}
}

func keys(ks []types.KeySchemaElement) []string {
	var out []string
	for _, k := range ks {
		out = append(out, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	return out
}

func templateKeys(ks []samtemplate.KeyElement) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.AttributeName+":"+k.KeyType)
	}
	return out
}
