// Package notify is the domain of the notification service: connections,
// targets, notifications, the frames exchanged with browsers, the publish
// request and its result, errors with machine codes, and the interfaces the
// service needs from storage and transport.
//
// It imports nothing from AWS: DynamoDB, the in-memory store, API Gateway's
// Management API and the local stack live in their own packages and plug in
// through ConnectionStore and Sender.
package notify
