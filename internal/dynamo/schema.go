package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// CreateConnectionsTable creates the connections table name with the schema
// template.yaml declares (see the package documentation), on-demand billing,
// and waits until the table and its index are ACTIVE. A table that already
// exists is not an error (its schema is not checked). TTL on expiresAt is
// enabled when the server supports it (dynalite does not).
//
// It is meant for tests and the local stack; on AWS, template.yaml creates
// the table.
func CreateConnectionsTable(ctx context.Context, client *dynamodb.Client, name string) error {
	return CreateTable(ctx, client, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrConnectionID), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexByConnection),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrConnectionID), KeyType: types.KeyTypeHash},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}, AttrExpiresAt)
}

// CreateTable creates the table in describes, tolerating one that already
// exists (its schema is not checked), waits until it and its indexes are
// ACTIVE, and, when it created the table, enables TTL on ttlAttribute (if
// not empty) where the server supports it (dynalite does not; readers filter
// expired items by time anyway). It is for tests and the local stack: on AWS,
// template.yaml creates the tables.
func CreateTable(ctx context.Context, client *dynamodb.Client, in *dynamodb.CreateTableInput, ttlAttribute string) error {
	name := aws.ToString(in.TableName)
	_, err := client.CreateTable(ctx, in)
	created := err == nil
	if err != nil {
		var inUse *types.ResourceInUseException
		if !errors.As(err, &inUse) {
			return fmt.Errorf("creating table %s: %w", name, err)
		}
	}
	if err := waitActive(ctx, client, name); err != nil {
		return err
	}
	if created && ttlAttribute != "" {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(ttlAttribute),
				Enabled:       aws.Bool(true),
			},
		})
		var apiErr smithy.APIError
		if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode() == "UnknownOperationException") {
			return fmt.Errorf("enabling TTL on table %s: %w", name, err)
		}
	}
	return nil
}

// waitActive polls DescribeTable until the table and all its global
// secondary indexes are ACTIVE, for at most 5 minutes or until ctx ends.
func waitActive(ctx context.Context, client *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			var nf *types.ResourceNotFoundException
			if !errors.As(err, &nf) {
				return fmt.Errorf("describing table %s: %w", name, err)
			}
		} else if active(out.Table) {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for table %s to be ACTIVE: %w", name, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// active reports whether the table and its indexes are ACTIVE.
func active(t *types.TableDescription) bool {
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
