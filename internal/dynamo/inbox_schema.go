package dynamo

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
	return CreateTable(ctx, client, &dynamodb.CreateTableInput{
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
	}, AttrExpiresAt)
}
