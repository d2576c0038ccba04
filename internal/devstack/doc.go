// Package devstack runs the whole system on one loopback address for
// development: API Gateway (WebSocket and Management APIs) and Lambda
// (Invoke API) from internal/localgw, driving the five functions built
// in-process by app.NewHandler — the same wiring functions/*/main.go use —
// from what template.yaml declares. It is what `notify local` (and
// `make run`) starts; the CLI only parses flags and calls Start.
//
// # From template.yaml
//
// The route selection expression, the routes and their integrations, each
// function's environment and timeout, and the tables' schemas all come from
// the template, so what runs locally is what deploys. Template values are
// resolved with local values:
//
//   - a parameter takes, in order: Options.Parameters; the environment
//     variable it feeds (JwtSecret → JWT_SECRET, found by looking at which
//     function variable is !Ref of the parameter); a development default
//     (JWT_SECRET=local-development-secret-do-not-deploy, ALLOWED_ORIGINS=*,
//     the stage name "local"); the template's Default. The development
//     defaults exist here only: template.yaml has none, so a deploy must be
//     given real values. Stack.DevSecretInUse says whether ConnectFunction
//     verifies with the development secret; the demo page's GET /dev/token
//     answers only then (docs/PROTOCOL.md §7).
//   - a table takes the environment variable that refers to it
//     (CONNECTIONS_TABLE, NOTIFICATIONS_TABLE), else the template's
//     TableName, else its logical ID.
//   - any other variable a function declares can be overridden by the
//     environment variable of the same name.
//   - MANAGEMENT_API_ENDPOINT is always http://ADDR, the stack's real
//     listen address, known only once the listener is open: the functions
//     are built right after it opens, and an invocation that arrives in
//     between waits for them.
//
// # Storage
//
// In memory by default: one memory.Store is every function's connection
// store and inbox. When Options.DynamoDBEndpoint or AWS_ENDPOINT_URL_DYNAMODB
// is set, the functions use DynamoDB there (through app's own wiring, from
// the table variables), and the stack first creates the template's tables
// that are missing.
//
// Options.WrapInbox is a test hook: it wraps the inbox of DefaultFunction and
// PublishFunction (on DynamoDB the stack then builds that inbox itself, with
// dynamo.NewInbox on NOTIFICATIONS_TABLE), so that tests can hold back or
// observe store calls.
//
// Options.WrapConnections does the same for every function's connection
// store (dynamo.New on CONNECTIONS_TABLE on DynamoDB).
//
// # Metrics
//
// Each function writes one CloudWatch embedded metric format object per
// invocation (docs/PROTOCOL.md §9). In Lambda it goes to standard output;
// here it goes to Options.Logger, as an Info record "metrics" (with the
// function's and the request's attributes) whose "emf" attribute is the
// same JSON object, so that the log shows what production would graph.
//
// # Credentials
//
// Nothing here looks for AWS credentials: every SDK client gets static
// credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the
// environment when both are set, dummies otherwise) and a region
// (AWS_REGION, AWS_DEFAULT_REGION, else us-east-1).
package devstack
