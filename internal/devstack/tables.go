package devstack

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/workorders/notify/internal/dynamo"
	"github.com/workorders/notify/internal/samtemplate"
)

// createTables creates each table of the template that does not exist yet,
// with the template's schema, under the name in names, and waits until all
// are ACTIVE. Existing tables are used as they are.
func createTables(ctx context.Context, client *dynamodb.Client, tmpl *samtemplate.Template, names map[string]string) error {
	for _, id := range slices.Sorted(maps.Keys(tmpl.Tables)) {
		if err := createTable(ctx, client, tmpl.Tables[id], names[id]); err != nil {
			return fmt.Errorf("table %s (%s): %w", names[id], id, err)
		}
	}
	return nil
}

func createTable(ctx context.Context, client *dynamodb.Client, t samtemplate.Table, name string) error {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingMode(t.BillingMode),
		KeySchema:   keySchema(t.KeySchema),
	}
	for _, a := range t.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: types.ScalarAttributeType(a.AttributeType),
		})
	}
	provisioned := in.BillingMode != types.BillingModePayPerRequest
	if provisioned {
		// The template's throughput does not matter locally.
		in.BillingMode = types.BillingModeProvisioned
		in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(5)}
	}
	for _, g := range t.GSIs {
		gsi := types.GlobalSecondaryIndex{
			IndexName:  aws.String(g.IndexName),
			KeySchema:  keySchema(g.KeySchema),
			Projection: &types.Projection{ProjectionType: types.ProjectionType(g.ProjectionType)},
		}
		if len(g.NonKeyAttributes) > 0 {
			gsi.Projection.NonKeyAttributes = g.NonKeyAttributes
		}
		if provisioned {
			gsi.ProvisionedThroughput = in.ProvisionedThroughput
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, gsi)
	}
	// An existing table (another stack on the same DynamoDB) is used as it is.
	return dynamo.CreateTable(ctx, client, in, t.TTLAttribute)
}

func keySchema(ks []samtemplate.KeyElement) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
	}
	return out
}
