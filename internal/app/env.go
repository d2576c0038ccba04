package app

// Environment variable names, the same in template.yaml and locally
// (docs/PROTOCOL.md §6).
const (
	EnvJWTSecret          = "JWT_SECRET"
	EnvJWTJWKSURL         = "JWT_JWKS_URL"
	EnvJWTIssuer          = "JWT_ISSUER"
	EnvJWTAudience        = "JWT_AUDIENCE"
	EnvJWTGroupsClaim     = "JWT_GROUPS_CLAIM"
	EnvAllowedOrigins     = "ALLOWED_ORIGINS"
	EnvRetentionDays      = "RETENTION_DAYS"
	EnvConnectionsTable   = "CONNECTIONS_TABLE"
	EnvNotificationsTable = "NOTIFICATIONS_TABLE"
	// EnvManagementEndpoint is the API Gateway Management API endpoint,
	// https://{apiId}.execute-api.{region}.amazonaws.com/{stage}. Required by
	// PublishFunction; ConnectFunction and DefaultFunction build it from
	// their event when unset.
	EnvManagementEndpoint = "MANAGEMENT_API_ENDPOINT"
	// EnvPublishConcurrency bounds the Management API calls in flight per publish.
	EnvPublishConcurrency = "PUBLISH_CONCURRENCY"
	// EnvMaxConnectionsPerUser caps a user's open connections; the oldest
	// are closed when a new one would exceed it (docs/PROTOCOL.md §2).
	EnvMaxConnectionsPerUser = "MAX_CONNECTIONS_PER_USER"
	// EnvMetricsNamespace is the CloudWatch namespace of every function's
	// EMF metrics (docs/PROTOCOL.md §9); metrics.DefaultNamespace
	// (WorkOrderNotify) when unset.
	EnvMetricsNamespace = "METRICS_NAMESPACE"
	// EnvFanoutFunction names FanoutFunction: set, a publish reaching more
	// than FANOUT_THRESHOLD connections hands them to it in batches
	// (docs/PROTOCOL.md §4); unset, PublishFunction sends everything itself.
	EnvFanoutFunction = "FANOUT_FUNCTION"
	// EnvFanoutThreshold, EnvFanoutBatchSize, EnvFanoutShards and
	// EnvFanoutPostsPerSecond tune the sharded fan-out (notify's
	// DefaultFanout* constants when unset).
	EnvFanoutThreshold      = "FANOUT_THRESHOLD"
	EnvFanoutBatchSize      = "FANOUT_BATCH_SIZE"
	EnvFanoutShards         = "FANOUT_SHARDS"
	EnvFanoutPostsPerSecond = "FANOUT_POSTS_PER_SECOND"
)

// EnvLambdaLogLevel is set by Lambda itself (not by template.yaml's
// Variables) when the function's LoggingConfig has an ApplicationLogLevel:
// the level of the JSON logger app.Main builds (LogLevel).
const EnvLambdaLogLevel = "AWS_LAMBDA_LOG_LEVEL"

// Function logical IDs, as in template.yaml and docs/PROTOCOL.md §1.
const (
	ConnectFunction    = "ConnectFunction"
	DisconnectFunction = "DisconnectFunction"
	DefaultFunction    = "DefaultFunction"
	PublishFunction    = "PublishFunction"
	FanoutFunction     = "FanoutFunction"
)

// FunctionEnv lists, per function logical ID, every environment variable its
// code reads. template.yaml must set each of them (a test checks it).
var FunctionEnv = map[string][]string{
	ConnectFunction: {
		EnvJWTSecret, EnvJWTJWKSURL, EnvJWTIssuer, EnvJWTAudience, EnvJWTGroupsClaim,
		EnvAllowedOrigins, EnvConnectionsTable, EnvManagementEndpoint, EnvMaxConnectionsPerUser,
		EnvMetricsNamespace,
	},
	DisconnectFunction: {EnvConnectionsTable, EnvMetricsNamespace},
	DefaultFunction: {
		EnvConnectionsTable, EnvNotificationsTable, EnvRetentionDays, EnvManagementEndpoint,
		EnvMetricsNamespace,
	},
	PublishFunction: {
		EnvConnectionsTable, EnvNotificationsTable, EnvRetentionDays, EnvManagementEndpoint,
		EnvPublishConcurrency, EnvMetricsNamespace,
		EnvFanoutFunction, EnvFanoutThreshold, EnvFanoutBatchSize, EnvFanoutShards, EnvFanoutPostsPerSecond,
	},
	FanoutFunction: {
		EnvConnectionsTable, EnvManagementEndpoint, EnvPublishConcurrency, EnvMetricsNamespace,
	},
}
