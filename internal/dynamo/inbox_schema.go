package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// CreateNotificationsTable creates the notifications table name with the
// schema template.yaml declares (key pk S HASH, sk S RANGE, no index,
// on-demand billing, TTL on expiresAt) and waits until it is ACTIVE. A table
// that already exists is not an error (its schema is not checked). TTL is
// enabled when the server supports it (dynalite does not).
//
// It is meant for tests and the local stack; on AWS, template.yaml creates
// the table.
func CreateNotificationsTable(ctx context.Context, client *dynamodb.Client, name string) error {
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
	})
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
	if created {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(AttrExpiresAt),
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
