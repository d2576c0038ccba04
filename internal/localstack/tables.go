package localstack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

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
	_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err == nil {
		return waitActive(ctx, client, name)
	}
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		return err
	}

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
	_, err = client.CreateTable(ctx, in)
	created := err == nil
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) { // in use: created meanwhile by another process
		return err
	}
	if err := waitActive(ctx, client, name); err != nil {
		return err
	}
	if created && t.TTLAttribute != "" {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(t.TTLAttribute), Enabled: aws.Bool(true),
			},
		})
		// dynalite has no TTL; readers filter expired items by time anyway.
		var apiErr smithy.APIError
		if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "UnknownOperationException") {
			return fmt.Errorf("enabling TTL on %s: %w", t.TTLAttribute, err)
		}
	}
	return nil
}

func keySchema(ks []samtemplate.KeyElement) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: types.KeyType(k.KeyType)})
	}
	return out
}

// waitActive polls until the table and its indexes are ACTIVE (dynalite,
// like DynamoDB, creates tables asynchronously), for at most a minute.
func waitActive(ctx context.Context, client *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &notFound) {
			return err
		}
		if err == nil && tableActive(out.Table) {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the table to be ACTIVE: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

func tableActive(t *types.TableDescription) bool {
	if t == nil || t.TableStatus != types.TableStatusActive {
		return false
	}
	for _, g := range t.GlobalSecondaryIndexes {
		if g.IndexStatus != types.IndexStatusActive {
			return false
		}
	}
	return true
}
